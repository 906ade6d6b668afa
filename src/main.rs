//! The `terok-executor` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = terok_executor::cli::Cli::parse();
    terok_executor::logging::init(cli.quiet_logs());
    match terok_executor::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("terok-executor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

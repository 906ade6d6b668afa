//! The `terok-executor` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = terok_executor::cli::Cli::parse();
    let quiet = matches!(&cli.command, terok_executor::cli::Command::Demo(args) if !args.serve);
    terok_executor::logging::init(quiet);
    match terok_executor::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("terok-executor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

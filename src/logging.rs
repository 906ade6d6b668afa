//! Logging: everything goes to stderr through `tracing`, never to stdout, which may carry frames.
//!
//! `RUST_LOG` sets the filter when present. Otherwise the level is `info`, raised to `debug` for
//! this crate when `TEROK_ACP_DEBUG` is set (to anything but `0`).

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber; `quiet` lowers the default level to warnings (for commands
/// whose own output is the point, like the demo).
pub fn init(quiet: bool) {
    let debug = !matches!(
        std::env::var("TEROK_ACP_DEBUG").ok().as_deref(),
        None | Some("") | Some("0")
    );
    let default = match (debug, quiet) {
        (true, _) => "info,terok_executor=debug",
        (false, true) => "warn",
        (false, false) => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

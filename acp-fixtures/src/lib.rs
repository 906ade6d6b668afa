//! A scriptable ACP agent used by the tests, the demo and the benchmark.

/// Runs the fixture agent with command-line style arguments; returns the process exit code.
pub fn run(_args: Vec<String>) -> i32 {
    eprintln!("acp-fixture-agent: not implemented yet");
    2
}

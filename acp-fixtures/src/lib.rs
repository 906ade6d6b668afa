//! A scriptable ACP agent used by the tests, the demo and the benchmark.
//!
//! The fixture speaks the Agent Client Protocol (JSON-RPC 2.0, one JSON object
//! per line) on stdin and stdout and writes its logs to stderr. Command-line
//! flags shape the agent it pretends to be (name, models, selector style,
//! capabilities, failures), and the text of each prompt picks a script
//! (streaming, cancellation, permission and file-system round trips, crashes).
//! See the crate's README for the full list.
//!
//! The main thread reads stdin and dispatches; each prompt runs on its own
//! thread; all output goes through one lock that keeps frames whole.

mod agent;
mod args;
mod client;
mod models;
mod output;
mod prompt;
mod rpc;
mod session;
mod store;

use agent::Agent;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs the fixture agent with command-line style arguments (without the
/// program name); returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let cfg = match args::parse(&args) {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("acp-fixture-agent: {message}\n{}", args::USAGE);
            return 2;
        }
    };
    if let Some(code) = cfg.exit_on_start {
        eprintln!("fixture {}: exiting on start", cfg.name);
        return code;
    }
    if cfg.stderr_noise {
        eprintln!("fixture {}: starting up (stderr noise)", cfg.name);
        eprintln!("{{\"jsonrpc\":\"2.0\",\"method\":\"stderr/is-not-a-frame\"}}");
        eprintln!(
            "fixture {}: warming caches, this line is noise too",
            cfg.name
        );
    }
    let mut log = match &cfg.log {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Some(file),
            Err(err) => {
                eprintln!("acp-fixture-agent: cannot open log {path}: {err}");
                return 2;
            }
        },
        None => None,
    };

    let ignore_eof = cfg.ignore_stdin_eof;
    let agent = Arc::new(Agent::new(cfg));
    let prompts = read_loop(&agent, log.as_mut());

    if ignore_eof {
        // Real agents often keep running after their input closes; so does this one.
        agent.out.flush();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    // Prompts waiting for the client can no longer be answered; the rest run
    // to completion so that piped input still gets its full output.
    agent.close_input();
    for handle in prompts {
        if handle.join().is_err() {
            eprintln!("acp-fixture-agent: a prompt thread panicked");
        }
    }
    agent.out.flush();
    0
}

/// Reads stdin until end of file, dispatching each line; returns the prompt
/// threads still running.
fn read_loop(agent: &Arc<Agent>, mut log: Option<&mut File>) -> Vec<JoinHandle<()>> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::with_capacity(4096);
    let mut prompts: Vec<JoinHandle<()>> = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                eprintln!("acp-fixture-agent: stdin read failed: {err}");
                break;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Some(file) = log.as_deref_mut() {
            // A failing log must not stop the agent; report and go on.
            let written = file.write_all(&line).and_then(|_| file.write_all(b"\n"));
            if let Err(err) = written.and_then(|_| file.flush()) {
                eprintln!("acp-fixture-agent: log write failed: {err}");
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match rpc::parse_line(&line) {
            Ok(message) => {
                if let Some(handle) = agent.dispatch(message) {
                    prompts.retain(|h| !h.is_finished());
                    prompts.push(handle);
                }
            }
            Err(reason) => eprintln!(
                "acp-fixture-agent: skipping malformed line ({reason}): {}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
    prompts
}

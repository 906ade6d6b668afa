//! Test harness: spawns the fixture binary over real pipes and talks to it.
//!
//! Every blocking step has a timeout, and dropping the harness kills the
//! child, so a misbehaving agent fails a test instead of hanging the suite.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single step may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How long a whole test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// The path of the fixture binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_acp-fixture-agent");

/// A running fixture agent.
pub struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    next_id: u64,
}

impl Fixture {
    /// Spawns the fixture with `args`.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// Spawns the fixture with `args` and extra environment variables.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_remove("ACP_FIXTURE_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn fixture");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            child,
            stdin,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
            next_id: 1,
        }
    }

    /// Everything the agent wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the agent wrote to stderr, once it has exited and the pipe has closed.
    pub fn stderr_after_exit(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr()
    }

    /// Writes one raw line to the agent.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Writes one JSON frame to the agent.
    pub fn send(&mut self, frame: &Value) {
        self.send_raw(&frame.to_string());
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request with a fresh numeric id; returns the id.
    pub fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Answers an agent-to-client request.
    pub fn reply(&mut self, id: &Value, result: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    /// Closes the agent's stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next raw stdout line, or `None` on timeout or end of output.
    pub fn try_recv_raw(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The next raw stdout line; fails the test on timeout.
    pub fn recv_raw(&mut self) -> String {
        match self.try_recv_raw(TIMEOUT) {
            Some(line) => line,
            None => panic!("no output from the fixture; stderr:\n{}", self.stderr()),
        }
    }

    /// The next stdout frame, parsed.
    pub fn recv(&mut self) -> Value {
        let line = self.recv_raw();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad frame {line:?}: {e}"))
    }

    /// Reads frames until the response to `id`; returns the frames before it
    /// and the response.
    pub fn until_response(&mut self, id: u64) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv();
            if frame.get("method").is_none() && frame["id"] == json!(id) {
                return (before, frame);
            }
            before.push(frame);
        }
    }

    /// Sends a request and returns its response (frames before it are dropped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.until_response(id).1
    }

    /// Sends a request and returns its `result`; fails on an error response.
    pub fn call_ok(&mut self, method: &str, params: Value) -> Value {
        let response = self.call(method, params);
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// Runs `initialize` and `session/new`; returns the session id.
    pub fn start_session(&mut self) -> String {
        self.call_ok(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}}),
        );
        let result = self.call_ok("session/new", json!({"cwd": "/work/dir", "mcpServers": []}));
        result["sessionId"].as_str().expect("sessionId").to_string()
    }

    /// Sends a prompt with one text block; returns the request id.
    pub fn send_prompt(&mut self, session: &str, text: &str) -> u64 {
        self.send_request(
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]}),
        )
    }

    /// Runs a prompt to completion; returns the updates and the response.
    pub fn prompt(&mut self, session: &str, text: &str) -> (Vec<Value>, Value) {
        let id = self.send_prompt(session, text);
        self.until_response(id)
    }

    /// Waits for the agent to exit; fails the test on timeout.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "fixture did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Tells whether the agent is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stdin = None;
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The texts of the `agent_message_chunk` updates among `frames`.
pub fn chunk_texts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["params"]["update"]["sessionUpdate"] == "agent_message_chunk")
        .filter_map(|f| f["params"]["update"]["content"]["text"].as_str())
        .map(String::from)
        .collect()
}

/// The stop reason of a prompt response.
pub fn stop_reason(response: &Value) -> &str {
    response["result"]["stopReason"]
        .as_str()
        .unwrap_or("<none>")
}

/// Runs `body` on a thread and fails if it does not finish within `limit`.
pub fn with_timeout(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = channel();
    let handle = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => panic!("test timed out after {limit:?}"),
    }
}

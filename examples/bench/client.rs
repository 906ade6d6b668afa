//! The benchmark's ACP client: blocking, one socket, the same code for both paths.
//!
//! Streamed updates are recognised by their envelope prefix and counted without parsing, so the
//! client costs far less per frame than either path it measures; every other frame is parsed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// How long any single read may block before the run is declared stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const BUF: usize = 4 << 20;

/// What a streamed prompt delivered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Streamed {
    pub updates: u64,
    pub bytes: u64,
}

pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    next_id: u64,
    out: Vec<u8>,
}

/// Whether a line is a `session/update` notification, from its first bytes only.
fn is_update(line: &[u8]) -> bool {
    let head = &line[..line.len().min(64)];
    memchr::memmem::find(head, br#""method":"session/update""#).is_some()
}

impl Client {
    pub fn connect(socket: &Path) -> anyhow::Result<Client> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: vec![0; BUF],
            start: 0,
            end: 0,
            next_id: 1,
            out: Vec::with_capacity(4096),
        })
    }

    /// Connects, retrying until the socket accepts (or `limit` passes).
    pub fn connect_when_ready(socket: &Path, limit: Duration) -> anyhow::Result<Client> {
        let deadline = Instant::now() + limit;
        loop {
            match Client::connect(socket) {
                Ok(client) => return Ok(client),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    /// The next line (without its newline), reading as needed.
    fn next_line(&mut self) -> anyhow::Result<(usize, usize)> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line = (self.start, self.start + pos);
                self.start += pos + 1;
                return Ok(line);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                bail!("a line longer than {BUF} bytes");
            }
            let n = self
                .stream
                .read(&mut self.buf[self.end..])
                .context("reading from the peer")?;
            if n == 0 {
                bail!("the peer closed the connection");
            }
            self.end += n;
        }
    }

    fn write_frame(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.out.clear();
        serde_json::to_writer(&mut self.out, frame)?;
        self.out.push(b'\n');
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Sends a request and returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.write_frame(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        Ok(id)
    }

    pub fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.write_frame(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// Reads until the response to `id`; updates met on the way are counted into `seen`.
    pub fn response(&mut self, id: u64, seen: &mut Streamed) -> anyhow::Result<Value> {
        loop {
            let (a, b) = self.next_line()?;
            let line = &self.buf[a..b];
            if is_update(line) {
                seen.updates += 1;
                seen.bytes += line.len() as u64 + 1;
                continue;
            }
            let value: Value = serde_json::from_slice(line)
                .with_context(|| format!("invalid JSON: {}", String::from_utf8_lossy(line)))?;
            if value.get("id").and_then(Value::as_u64) == Some(id) && value.get("method").is_none()
            {
                return Ok(value);
            }
        }
    }

    /// A request's result; an error answer fails the run.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.send_request(method, params)?;
        let answer = self.response(id, &mut Streamed::default())?;
        match answer.get("result") {
            Some(result) => Ok(result.clone()),
            None => bail!("{method} failed: {answer}"),
        }
    }

    pub fn initialize(&mut self) -> anyhow::Result<Value> {
        self.call(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
        )
    }

    /// `session/new`; returns the session id.
    pub fn new_session(&mut self) -> anyhow::Result<String> {
        let result = self.call("session/new", json!({"cwd": "/tmp", "mcpServers": []}))?;
        result
            .get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .context("session/new answered without a sessionId")
    }

    pub fn pick_model(&mut self, sid: &str, value: &str) -> anyhow::Result<()> {
        self.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": value}),
        )?;
        Ok(())
    }

    pub fn send_prompt(&mut self, sid: &str, text: &str) -> anyhow::Result<u64> {
        self.send_request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": text}]}),
        )
    }

    /// Runs `stream N S` and checks that all N updates arrived before the answer.
    pub fn stream(&mut self, sid: &str, n: u64, size: usize) -> anyhow::Result<Streamed> {
        let id = self.send_prompt(sid, &format!("stream {n} {size}"))?;
        let mut seen = Streamed::default();
        let answer = self.response(id, &mut seen)?;
        check_stop(&answer, "end_turn")?;
        if seen.updates != n {
            bail!(
                "{} of {n} updates arrived before the prompt's answer",
                seen.updates
            );
        }
        Ok(seen)
    }

    /// Time from sending a prompt to its first update; the rest of the turn is drained.
    pub fn first_update(&mut self, sid: &str) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let id = self.send_prompt(sid, "stream 1 64")?;
        let (a, b) = self.next_line()?;
        let elapsed = t0.elapsed();
        if !is_update(&self.buf[a..b]) {
            bail!(
                "expected an update first, got {}",
                String::from_utf8_lossy(&self.buf[a..b])
            );
        }
        let answer = self.response(id, &mut Streamed::default())?;
        check_stop(&answer, "end_turn")?;
        Ok(elapsed)
    }

    /// Starts an endless stream, waits for `backlog` updates, cancels, and times the answer.
    pub fn cancel_under_load(&mut self, sid: &str, backlog: u64) -> anyhow::Result<Duration> {
        let id = self.send_prompt(sid, "stream 1000000000 64")?;
        let mut seen = 0;
        while seen < backlog {
            let (a, b) = self.next_line()?;
            if !is_update(&self.buf[a..b]) {
                bail!("unexpected frame while streaming");
            }
            seen += 1;
        }
        let t0 = Instant::now();
        self.notify("session/cancel", json!({"sessionId": sid}))?;
        let answer = self.response(id, &mut Streamed::default())?;
        let elapsed = t0.elapsed();
        check_stop(&answer, "cancelled")?;
        Ok(elapsed)
    }
}

fn check_stop(answer: &Value, expected: &str) -> anyhow::Result<()> {
    let stop = answer.pointer("/result/stopReason").and_then(Value::as_str);
    if stop != Some(expected) {
        bail!("expected stopReason {expected}, got {answer}");
    }
    Ok(())
}

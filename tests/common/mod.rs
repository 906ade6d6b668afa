//! Integration-test harness: fixture agents in a temporary "container" directory, the real
//! proxy serving them on a socket in that directory, and an ACP client that talks to it.
//!
//! Every wait is bounded; a test that would hang fails with the message of the step it was on.

#![allow(dead_code)]

pub mod vault;

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use terok_executor::acp::daemon;
use terok_executor::acp::runtime::{LocalRuntime, Runtime};
use terok_executor::acp::server::{ProxyConfig, Server};

/// How long one step may take.
pub const STEP: Duration = Duration::from_secs(15);

pub const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

/// A temporary directory of agent wrappers: the local runtime's "container".
pub struct Agents {
    pub dir: tempfile::TempDir,
}

impl Agents {
    /// Wrappers running the fixture agent: `(name, extra flags)`. Each wrapper records its pid
    /// in `<dir>/pids/<name>.<pid>` and the fixture logs its input to `<dir>/logs/<name>.log`.
    pub fn new(agents: &[(&str, &str)]) -> Agents {
        let dir = tempfile::Builder::new()
            .prefix("terok-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("pids")).unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let agents_ = Agents { dir };
        for (name, flags) in agents {
            agents_.add_fixture(name, flags);
        }
        agents_
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn add_fixture(&self, name: &str, flags: &str) {
        let log = self.path().join("logs").join(format!("{name}.log"));
        let pids = self.path().join("pids");
        self.add_script(
            name,
            &format!(
                "echo $$ > '{pids}/{name}.'$$\nexec '{BIN}' fixture-agent --name {name} --log '{log}' {flags}",
                pids = pids.display(),
                log = log.display()
            ),
        );
    }

    pub fn add_script(&self, name: &str, body: &str) {
        let path = self.path().join(format!("terok-{name}-acp"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Lines the agent `name` received, across all its processes, parsed.
    pub fn received(&self, name: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path().join("logs").join(format!("{name}.log")))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Frames of `method` the agent `name` received.
    pub fn received_method(&self, name: &str, method: &str) -> Vec<Value> {
        self.received(name)
            .into_iter()
            .filter(|v| v["method"] == method)
            .collect()
    }

    /// Pids of every wrapper process started so far.
    pub fn pids(&self, name: &str) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(self.path().join("pids"))
            .unwrap()
            .flatten()
        {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = file.strip_prefix(&format!("{name}.")) {
                pids.push(pid.parse().unwrap());
            }
        }
        pids
    }
}

/// Whether a process is still alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits until `pred` holds, polling; fails the test after `STEP`.
pub async fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !pred() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The proxy serving `agents`, in this process.
pub struct Proxy {
    pub server: Arc<Server>,
    pub socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _guard: daemon::SocketGuard,
}

impl Proxy {
    pub async fn start(agents: &Agents) -> Proxy {
        Proxy::start_with(agents, ProxyConfig::default()).await
    }

    pub async fn start_with(agents: &Agents, config: ProxyConfig) -> Proxy {
        let runtime = Arc::new(LocalRuntime::new(agents.path()).unwrap());
        Proxy::start_on(agents, runtime, config).await
    }

    /// The proxy serving `runtime` (e.g. one that wraps the local runtime of `agents`).
    pub async fn start_on(
        agents: &Agents,
        runtime: Arc<dyn Runtime>,
        mut config: ProxyConfig,
    ) -> Proxy {
        let socket = agents.path().join("run").join("acp.sock");
        if config.bound_file.is_none() {
            config.bound_file = Some(daemon::sibling(&socket, "bound"));
        }
        let server = Server::new(runtime, config);
        let (listener, guard) = daemon::claim_socket(&socket)
            .await
            .unwrap()
            .expect("socket is free");
        let task = tokio::spawn(daemon::serve(listener, server.clone()));
        Proxy {
            server,
            socket,
            task,
            _guard: guard,
        }
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.socket).await
    }

    /// Shuts the proxy down and waits for it.
    pub async fn stop(self) {
        self.server.shutdown.cancel();
        tokio::time::timeout(STEP, self.task)
            .await
            .expect("proxy did not stop")
            .unwrap();
    }
}

/// An ACP client over the proxy's socket (or any byte stream, such as `acp connect`'s stdio).
pub struct Client {
    writer: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    incoming: mpsc::UnboundedReceiver<Value>,
    /// Messages read while waiting for something else.
    pub backlog: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    pub async fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket).await.unwrap();
        let (read, writer) = stream.into_split();
        Client::over(read, writer)
    }

    /// A client reading frames from `read` and writing to `writer`.
    pub fn over(
        read: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        writer: impl tokio::io::AsyncWrite + Send + 'static,
    ) -> Client {
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("proxy sent invalid JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Client {
            writer: Box::pin(writer),
            incoming,
            backlog: VecDeque::new(),
            next_id: 1,
        }
    }

    pub async fn send_raw(&mut self, line: &str) {
        self.send_bytes(line.as_bytes()).await;
    }

    /// Sends `line` and a newline, whatever the bytes (they need not be UTF-8).
    pub async fn send_bytes(&mut self, line: &[u8]) {
        self.writer.write_all(line).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    /// Waits until the proxy closes the connection, ignoring what it still sends.
    pub async fn expect_closed(&mut self) {
        tokio::time::timeout(STEP, async {
            while self.incoming.recv().await.is_some() {}
        })
        .await
        .expect("timed out waiting for the proxy to close the connection");
    }

    pub async fn send(&mut self, value: &Value) {
        self.send_raw(&value.to_string()).await;
    }

    /// Sends a request with the next numeric id; returns the id.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.request_with_id(id.clone(), method, params).await;
        id
    }

    pub async fn request_with_id(&mut self, id: Value, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// The next message from the proxy, from the backlog first.
    pub async fn next(&mut self) -> Value {
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        self.recv().await
    }

    async fn recv(&mut self) -> Value {
        tokio::time::timeout(STEP, self.incoming.recv())
            .await
            .expect("timed out waiting for a message from the proxy")
            .expect("the proxy closed the connection")
    }

    /// Waits for the first message matching `pred`, keeping the others in the backlog.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(what, STEP, pred).await
    }

    /// [`Client::wait_for`] with a longer patience, for real agents that take their time.
    pub async fn wait_for_within(
        &mut self,
        what: &str,
        patience: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(pos) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(pos).unwrap();
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let v = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for {what}; backlog: {:?}", self.backlog)
                })
                .unwrap_or_else(|| panic!("connection closed while waiting for {what}"));
            if pred(&v) {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// The response to `id` (result or error).
    pub async fn response(&mut self, id: &Value) -> Value {
        let id = id.clone();
        self.wait_for(&format!("the response to {id}"), move |v| {
            v.get("id") == Some(&id) && v.get("method").is_none()
        })
        .await
    }

    /// Sends a request and returns its `result`, failing the test on an error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params).await;
        let response = self.response(&id).await;
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// Sends a request and returns its `error`, failing the test if it succeeded.
    pub async fn call_err(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params).await;
        let response = self.response(&id).await;
        response
            .get("error")
            .cloned()
            .unwrap_or_else(|| panic!("{method} should fail: {response}"))
    }

    pub async fn initialize(&mut self) -> Value {
        self.call(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": EDITOR_CAPS.clone(), "clientInfo": {"name": "test", "version": "1"}}),
        )
        .await
    }

    pub async fn new_session(&mut self) -> (String, Value) {
        let result = self
            .call("session/new", json!({"cwd": "/tmp", "mcpServers": []}))
            .await;
        (
            result["sessionId"].as_str().expect("sessionId").to_owned(),
            result,
        )
    }

    pub async fn pick(&mut self, sid: &str, value: &str) -> Value {
        self.call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": value}),
        )
        .await
    }

    /// Prompts and collects the text of every agent_message_chunk until the turn ends.
    pub async fn prompt(&mut self, sid: &str, text: &str) -> (Vec<String>, Value) {
        let id = self
            .request(
                "session/prompt",
                json!({"sessionId": sid, "prompt": [{"type": "text", "text": text}]}),
            )
            .await;
        let mut chunks = Vec::new();
        let mut others = Vec::new();
        loop {
            let v = match self.backlog.pop_front() {
                Some(v) => v,
                None => self.recv().await,
            };
            if v.get("id") == Some(&id) && v.get("method").is_none() {
                self.backlog.extend(others);
                return (chunks, v);
            }
            if v["method"] == "session/update"
                && v["params"]["sessionId"] == sid
                && v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
            {
                chunks.push(
                    v["params"]["update"]["content"]["text"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                );
            } else {
                others.push(v);
            }
        }
    }
}

/// The client capabilities current editors send (Zed's, at the time of writing).
pub static EDITOR_CAPS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "fs": {"readTextFile": true, "writeTextFile": true},
        "terminal": true,
        "auth": {"terminal": true, "_meta": {"gateway": true}},
        "_meta": {"terminal-auth": true},
    })
});

/// The current value of the model option in a `configOptions` list.
pub fn current_model(options: &Value) -> String {
    options
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == "model"))
        .and_then(|o| o["currentValue"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Every value the model picker offers, in order.
pub fn picker_values(options: &Value) -> Vec<String> {
    let model = options
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == "model"))
        .cloned()
        .unwrap_or_default();
    let mut values = Vec::new();
    for entry in model["options"].as_array().into_iter().flatten() {
        match entry["options"].as_array() {
            Some(group) => values.extend(
                group
                    .iter()
                    .filter_map(|o| o["value"].as_str().map(str::to_owned)),
            ),
            None => values.extend(entry["value"].as_str().map(str::to_owned)),
        }
    }
    values
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The variables `.ci/podman-env.sh` exports that children need.
pub const PODMAN_VARS: &[&str] = &[
    "CONTAINER_HOST",
    "DOCKER_HOST",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "TEROK_PODMAN_DIR",
];

/// Sources `.ci/podman-env.sh` once and keeps the variables it exports. Without Podman the
/// tests that need it skip, except under CI, where they fail.
pub fn podman_env() -> Option<&'static std::collections::HashMap<String, String>> {
    static ENV: std::sync::OnceLock<Result<std::collections::HashMap<String, String>, String>> =
        std::sync::OnceLock::new();
    let result = ENV.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("export TEROK_PODMAN_QUIET=1; source .ci/podman-env.sh >&2 && env")
            .current_dir(repo())
            .output()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "podman setup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let vars: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| PODMAN_VARS.contains(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if !vars.contains_key("CONTAINER_HOST") {
            return Err("podman setup exported no CONTAINER_HOST".into());
        }
        Ok(vars)
    });
    match result {
        Ok(vars) => Some(vars),
        Err(reason) if std::env::var_os("CI").is_some() => panic!("{reason}"),
        Err(reason) => {
            eprintln!("skipping: {reason}");
            None
        }
    }
}

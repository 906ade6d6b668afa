//! `terok-executor demo`: the proxy at work without a container engine.
//!
//! The demo writes two wrapper scripts into a temporary directory, each running the embedded
//! fixture agent under another name (`claude` with config-option models and a mode option,
//! `codex` with only the legacy `models` block), serves that directory with the local runtime
//! and, unless `--serve` is given, runs a scripted client session through the socket: the
//! handshake, the aggregated picker, a model pick, a streamed reply, and a second session that
//! binds lazily on its first prompt. With `--serve` it keeps serving and prints how to connect.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::acp::daemon;
use crate::acp::frame::{Frame, FrameKind};
use crate::acp::lines::{Line, LineReader, DEFAULT_MAX_FRAME};
use crate::acp::runtime::LocalRuntime;
use crate::acp::server::{ProxyConfig, Server};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep serving after setup and print how to connect an editor.
    #[arg(long)]
    pub serve: bool,
    /// Socket path for `--serve` (default: inside the demo's temporary directory).
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

/// The demo's agents: name and fixture flags.
const AGENTS: &[(&str, &str)] = &[
    (
        "claude",
        "--name claude --models opus,sonnet,haiku --mode-option",
    ),
    (
        "codex",
        "--name codex --models gpt-5,gpt-5-mini --model-style legacy",
    ),
];

/// Writes `terok-<agent>-acp` wrappers that run this binary's fixture agent.
pub fn write_fixture_wrappers(dir: &Path, agents: &[(&str, &str)]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let exe = exe
        .to_str()
        .context("executable path is not UTF-8")?
        .replace('\'', "'\\''");
    for (name, flags) in agents {
        let path = dir.join(format!("terok-{name}-acp"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexec '{exe}' fixture-agent {flags} \"$@\"\n"),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("terok-demo-").tempdir()?;
    let agents_dir = dir.path().join("container");
    std::fs::create_dir(&agents_dir)?;
    write_fixture_wrappers(&agents_dir, AGENTS)?;
    let runtime = Arc::new(LocalRuntime::new(&agents_dir)?);

    if args.serve {
        // Served at the directory's endpoint, so `acp connect --runtime local <dir>` finds it.
        let socket = match &args.socket {
            Some(socket) => socket.clone(),
            None => {
                crate::cli::endpoint_for(
                    crate::cli::RuntimeKind::Local,
                    &agents_dir.to_string_lossy(),
                )?
                .0
                .socket
            }
        };
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "terok-executor".into());
        let dir = agents_dir.display();
        println!("Serving two fixture agents (claude, codex) from {dir}");
        println!("ACP endpoint: {}", socket.display());
        println!();
        println!("Connect an editor with:");
        println!("  {exe} acp connect --runtime local {dir}");
        println!("Zed settings.json:");
        println!(
            "  \"agent_servers\": {{\"terok demo\": {{\"type\": \"custom\", \"command\": \"{exe}\", \"args\": [\"acp\", \"connect\", \"--runtime\", \"local\", \"{dir}\"]}}}}"
        );
        println!("Toad:");
        println!("  toad acp \"{exe} acp connect --runtime local {dir}\" .");
        println!("Press Ctrl-C to stop.");
        std::io::stdout().flush()?;
        daemon::run(runtime, &socket, ProxyConfig::from_env()).await?;
        return Ok(ExitCode::SUCCESS);
    }

    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| dir.path().join("acp").join("demo.sock"));
    let Some((listener, guard)) = daemon::claim_socket(&socket).await? else {
        bail!("{} is already served", socket.display());
    };
    let server = Server::new(runtime, ProxyConfig::from_env());
    let serving = tokio::spawn(daemon::serve(listener, server.clone()));
    let outcome = script(&socket).await;
    server.shutdown.cancel();
    let _ = serving.await;
    drop(guard);
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// A minimal sequential ACP client for the scripted session.
struct DemoClient {
    reader: LineReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    next_id: u64,
}

impl DemoClient {
    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        loop {
            let Some(Line::Frame(raw)) = self.reader.next_line().await? else {
                bail!("the daemon closed the connection")
            };
            let frame = Frame::parse(raw)?;
            let value = frame.to_value()?;
            match frame.kind() {
                FrameKind::Response if frame.id_u64() == Some(id) => {
                    if let Some(error) = value.get("error") {
                        bail!("{method} failed: {error}");
                    }
                    return Ok(value["result"].clone());
                }
                FrameKind::Notification => show_update(&value),
                _ => {}
            }
        }
    }
}

fn show_update(value: &Value) {
    let update = &value["params"]["update"];
    match update["sessionUpdate"].as_str() {
        Some("agent_message_chunk") => println!(
            "    agent> {}",
            update["content"]["text"].as_str().unwrap_or("")
        ),
        Some("config_option_update") => println!(
            "    (picker update: now {})",
            current_model(&update["configOptions"])
        ),
        Some(other) => println!("    ({other})"),
        None => {}
    }
}

fn current_model(options: &Value) -> String {
    options
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == "model"))
        .and_then(|o| o["currentValue"].as_str())
        .unwrap_or("?")
        .to_owned()
}

async fn script(socket: &Path) -> anyhow::Result<()> {
    let stream = UnixStream::connect(socket).await?;
    let (read, writer) = stream.into_split();
    let mut client = DemoClient {
        reader: LineReader::new(read, DEFAULT_MAX_FRAME),
        writer,
        next_id: 0,
    };
    let cwd = std::env::current_dir()?.display().to_string();

    println!("> initialize");
    let init = client
        .call("initialize", json!({"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}, "terminal": true}, "clientInfo": {"name": "demo", "version": "1"}}))
        .await?;
    println!(
        "    agent: {} (protocol {})",
        init["agentInfo"]["title"].as_str().unwrap_or("?"),
        init["protocolVersion"]
    );

    println!("> session/new");
    let session = client
        .call("session/new", json!({"cwd": cwd, "mcpServers": []}))
        .await?;
    let sid = session["sessionId"]
        .as_str()
        .context("no sessionId")?
        .to_owned();
    println!("    session {sid}; the model picker lists:");
    for group in session["configOptions"][0]["options"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values: Vec<&str> = group["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["value"].as_str())
            .collect();
        println!(
            "      {:<8} {}",
            group["name"].as_str().unwrap_or("?"),
            values.join("  ")
        );
    }
    println!("    default: {}", current_model(&session["configOptions"]));

    println!("> session/set_config_option model = codex:gpt-5-mini");
    let picked = client
        .call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "codex:gpt-5-mini"}),
        )
        .await?;
    println!(
        "    model is now {}",
        current_model(&picked["configOptions"])
    );

    println!("> session/prompt \"hello through the proxy\"");
    let done = client.call("session/prompt", json!({"sessionId": sid, "prompt": [{"type": "text", "text": "hello through the proxy"}]})).await?;
    println!("    stopReason: {}", done["stopReason"]);

    println!("> session/prompt \"stream 3 24\" (three streamed chunks)");
    let done = client
        .call(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "stream 3 24"}]}),
        )
        .await?;
    println!("    stopReason: {}", done["stopReason"]);

    println!("> a second session/new, prompted without a pick (binds the default lazily)");
    let second = client
        .call("session/new", json!({"cwd": cwd, "mcpServers": []}))
        .await?;
    let sid2 = second["sessionId"]
        .as_str()
        .context("no sessionId")?
        .to_owned();
    let done = client.call("session/prompt", json!({"sessionId": sid2, "prompt": [{"type": "text", "text": "which agent are you?"}]})).await?;
    println!("    stopReason: {}", done["stopReason"]);
    println!("done: one endpoint, two agents, two sessions.");
    Ok(())
}

//! The product's own path, end to end, on real Podman: `build` makes L0 and L1 from a Debian base
//! made locally (`.ci/debian-base.sh`: mmdebstrap + `podman import`) with registry-only sources
//! and the real ACP adapters of claude and codex from npm; `run claude --acp` starts the
//! container with the default hardening; an editor talks to the agents through `acp connect`;
//! `stop` removes everything.
//!
//! The images stay in the private store between runs (a cache: a second run builds nothing);
//! the containers and the derived test image are removed even when a step fails. Without Podman
//! or the base image the test skips, except under CI, where it fails.
//!
//! One step needs an agent that reads a file on request, which no real agent does without a
//! model: the container's image is the real L1 plus the fixture agent (`terok-fixture-acp`),
//! added by a one-layer image built on top of it.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use common::{picker_values, podman_env, Client, BIN, EDITOR_CAPS};

const BASE: &str = "localhost/debian:trixie";
/// A build on a fresh machine downloads the agents; later runs find the images.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// Real agents start slowly (Node, the adapters' own start-up).
const AGENT_PATIENCE: Duration = Duration::from_secs(120);

struct World {
    vars: HashMap<String, String>,
    dir: tempfile::TempDir,
    containers: Vec<String>,
    images: Vec<String>,
}

impl World {
    fn new() -> Option<World> {
        let vars = podman_env()?.clone();
        let exists = std::process::Command::new("podman")
            .args(["image", "exists", BASE])
            .envs(&vars)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !exists {
            let reason = format!(
                "no base image {BASE} in the private store: run `source .ci/podman-env.sh; \
                 .ci/debian-base.sh` (which .ci/run does)"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{reason}");
            }
            eprintln!("skipping: {reason}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("terok-real-")
            .tempdir()
            .unwrap();
        // Rootful Podman maps no user: the container's dev user writes through the mode.
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::set_permissions(&workspace, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(workspace.join("hello.txt"), "hello from the host\n").unwrap();
        Some(World {
            vars,
            dir,
            containers: Vec::new(),
            images: Vec::new(),
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path("workspace"))
            .envs(&self.vars)
            .env("TEROK_CONFIG_DIR", self.path("config"))
            .env("TEROK_CONFIG_FILE", self.path("config/config.yml"))
            .env("TEROK_ROOT", self.path("state"))
            .env("TEROK_RUNTIME_DIR", self.path("run"))
            .env("TEROK_SANDBOX_RUNTIME_DIR", self.path("sb"))
            .env("TEROK_VAULT_DIR", self.path("state/vault"))
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str], patience: Duration) -> (Option<i32>, String, String) {
        let out = tokio::time::timeout(patience, self.cmd(args).stdin(Stdio::null()).output())
            .await
            .unwrap_or_else(|_| panic!("{args:?} took longer than {patience:?}"))
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// An editor on `acp connect <name>`: the bridge process and the client over its stdio.
    fn editor(&self, name: &str) -> (tokio::process::Child, Client) {
        let mut bridge = self
            .cmd(&["acp", "connect", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let editor = Client::over(bridge.stdout.take().unwrap(), bridge.stdin.take().unwrap());
        (bridge, editor)
    }

    fn podman(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("podman")
            .args(args)
            .envs(&self.vars)
            .output()
            .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.podman(&["rm", "-f", "-v", "-t", "0", c]);
        }
        for image in &self.images {
            let _ = self.podman(&["rmi", "-f", image]);
        }
    }
}

/// The machine's extra certificate authorities (a TLS-inspecting proxy's, where there is one):
/// the build and the agents need them as the host does.
fn ca_cert_args() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/usr/local/share/ca-certificates") else {
        return Vec::new();
    };
    let mut certs: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    certs.sort();
    certs
        .iter()
        .flat_map(|p| ["--ca-cert".to_owned(), p.display().to_string()])
        .collect()
}

/// The real L1 plus the fixture agent, in one layer: `terok-fixture-acp` runs this very binary's
/// `fixture-agent`.
fn image_with_fixture(world: &mut World, l1: &str) -> String {
    let ctx = world.path("fixture-image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(BIN, ctx.join("terok-executor")).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!(
            "FROM {l1}\nUSER root\nCOPY terok-executor /usr/local/bin/terok-executor\n\
             RUN printf '#!/bin/sh\\nexec terok-executor fixture-agent --name fixture\\n' \
             > /usr/local/bin/terok-fixture-acp && chmod 0755 /usr/local/bin/terok-fixture-acp\n\
             USER dev\nLABEL ai.terok.agents=\"claude,codex,fixture\"\n"
        ),
    )
    .unwrap();
    let tag = format!("localhost/terok-real-fixture:{}", std::process::id());
    world.images.push(tag.clone());
    let out = world.podman(&["build", "-q", "-t", &tag, ctx.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "fixture image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

fn podman_inside(world: &World, image: &str, script: &str) -> String {
    let out = world.podman(&["run", "--rm", image, "sh", "-c", script]);
    assert!(
        out.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Processes of this machine whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(needle) {
                found.push(format!("{}: {line}", name.to_string_lossy()));
            }
        }
    }
    found
}

fn model_values(options: &Value) -> Vec<String> {
    picker_values(options)
}

/// One build at a time: the tests share the images (the first builds them, the next find them).
static BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `build`: L0 and L1 from the local Debian base, packages from the registries only. The L1 tag.
async fn build_l1(world: &World) -> String {
    let _one_at_a_time = BUILD.lock().await;
    let mut args = vec![
        "build",
        "--base",
        BASE,
        "--agents",
        "claude,codex",
        "--sources",
        "registries",
        "--plain",
    ];
    let certs = ca_cert_args();
    args.extend(certs.iter().map(String::as_str));
    let (code, stdout, stderr) = world.run(&args, BUILD_TIMEOUT).await;
    assert_eq!(code, Some(0), "build failed:\n{stderr}");
    let tags: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        tags,
        [
            "terok-l0:localhost-debian-trixie",
            "terok-l1-cli:localhost-debian-trixie-claude-codex"
        ]
    );
    tags[1].to_owned()
}

#[tokio::test]
async fn real_adapters_in_a_hardened_container_serve_an_editor() {
    let Some(mut world) = World::new() else {
        return;
    };

    let l1 = build_l1(&world).await;

    // What the image carries: pinned adapters in /usr/local, recorded; Node from npm.
    let inside = podman_inside(
        &world,
        &l1,
        ". /etc/terok/installed.env; echo \"$TEROK_INSTALLED_AGENTS|$TEROK_BUILD_SOURCES|$TEROK_NODE_VERSION\"; \
         echo \"$TEROK_NPM_PACKAGES\"; node --version; command -v claude-agent-acp; command -v codex-acp; \
         grep -l npx /usr/local/bin/terok-*-acp || echo no-npx",
    );
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[0], "claude,codex|registries|22.23.3", "{inside}");
    for pinned in [
        "@agentclientprotocol/claude-agent-acp@0.101.0",
        "@agentclientprotocol/codex-acp@2.6.0",
        "@anthropic-ai/claude-code@2.1.332",
        "@openai/codex@0.166.0",
    ] {
        assert!(
            lines[1].split(' ').any(|p| p == pinned),
            "{pinned}: {inside}"
        );
    }
    assert_eq!(lines[2], "v22.23.3");
    assert_eq!(
        &lines[3..],
        [
            "/usr/local/bin/claude-agent-acp",
            "/usr/local/bin/codex-acp",
            "no-npx"
        ]
    );

    // run --acp, hardened (the defaults), with a dummy API key for codex's own login.
    let image = image_with_fixture(&mut world, &l1);
    let name = format!("terok-real-{}", std::process::id());
    world.containers.push(name.clone());
    let (code, stdout, stderr) = world
        .run(
            &[
                "run",
                "claude",
                ".",
                "--acp",
                "--image",
                &image,
                "--name",
                &name,
                "-e",
                "CODEX_API_KEY=sk-terok-test-dummy",
            ],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(code, Some(0), "run failed:\n{stderr}");
    assert_eq!(stdout.trim(), format!("terok-executor acp connect {name}"));
    let hardening = world.podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.SecurityOpt}} {{.HostConfig.CapDrop}}",
        &name,
    ]);
    let hardening = String::from_utf8_lossy(&hardening.stdout).into_owned();
    assert!(hardening.starts_with("true "), "{hardening}");
    assert!(hardening.contains("no-new-privileges"), "{hardening}");

    // An editor through `acp connect`.
    let (mut bridge, mut editor) = world.editor(&name);

    // initialize lists codex's own login methods under its name.
    let init = editor
        .call(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": EDITOR_CAPS.clone(),
                   "clientInfo": {"name": "e2e", "version": "1"}}),
        )
        .await;
    let methods: Vec<&str> = init["authMethods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(methods.contains(&"codex:api-key"), "{init}");
    assert!(methods.iter().all(|m| m.contains(':')), "{methods:?}");

    // session/new offers claude's real models; codex waits for its login.
    let workspace = world.path("workspace");
    let id = editor
        .request("session/new", json!({"cwd": workspace, "mcpServers": []}))
        .await;
    let new = editor
        .wait_for_within("session/new", AGENT_PATIENCE, |v| v.get("id") == Some(&id))
        .await;
    let result = &new["result"];
    let sid = result["sessionId"].as_str().expect("a session").to_owned();
    let values = model_values(&result["configOptions"]);
    assert!(
        values.iter().filter(|v| v.starts_with("claude:")).count() >= 2,
        "{values:?}"
    );
    assert!(
        values.iter().any(|v| v.starts_with("fixture:")),
        "{values:?}"
    );
    assert!(
        !values.iter().any(|v| v.starts_with("codex:")),
        "{values:?}"
    );
    assert!(
        result["configOptions"][0]["currentValue"]
            .as_str()
            .unwrap()
            .starts_with("claude:"),
        "{result}"
    );

    // A prompt to claude, which has no credentials: claude's own error, as claude said it.
    let id = editor
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "hello"}]}),
        )
        .await;
    let answer = editor
        .wait_for_within("claude's answer", AGENT_PATIENCE, |v| {
            v.get("id") == Some(&id)
        })
        .await;
    assert_eq!(
        answer["error"],
        json!({"code": -32000, "message": "Authentication required"}),
        "{answer}"
    );

    // codex's API-key login (the key from the container's environment) adds its models to the
    // open session's picker.
    let id = editor
        .request("authenticate", json!({"methodId": "codex:api-key"}))
        .await;
    let login = editor
        .wait_for_within("codex's login", AGENT_PATIENCE, |v| {
            v.get("id") == Some(&id)
        })
        .await;
    assert_eq!(login["result"], json!({}), "{login}");
    let sid_value = json!(sid);
    let update = editor
        .wait_for_within("codex's models in the picker", AGENT_PATIENCE, |v| {
            v["params"]["sessionId"] == sid_value
                && v["params"]["update"]["sessionUpdate"] == "config_option_update"
                && model_values(&v["params"]["update"]["configOptions"])
                    .iter()
                    .any(|m| m.starts_with("codex:"))
        })
        .await;
    let values = model_values(&update["params"]["update"]["configOptions"]);
    assert!(
        values.iter().any(|v| v.starts_with("claude:")),
        "{values:?}"
    );

    // An agent's fs/read_text_file reaches the editor with the host path of the workspace.
    let picked = editor
        .call(
            "session/set_config_option",
            json!({"sessionId": sid, "configId": "model", "value": "fixture:small"}),
        )
        .await;
    assert_eq!(picked["configOptions"][0]["currentValue"], "fixture:small");
    // The first prompt after a switch carries the conversation so far to the new agent.
    let id = editor
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "take over"}]}),
        )
        .await;
    let handed = editor
        .wait_for_within("the handover", AGENT_PATIENCE, |v| v.get("id") == Some(&id))
        .await;
    assert_eq!(handed["result"]["stopReason"], "end_turn", "{handed}");
    let id = editor
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "read /workspace/hello.txt"}]}),
        )
        .await;
    let read = editor
        .wait_for_within("the agent's read", AGENT_PATIENCE, |v| {
            v["method"] == "fs/read_text_file"
        })
        .await;
    let host_file = workspace.join("hello.txt");
    assert_eq!(
        read["params"]["path"].as_str(),
        Some(host_file.to_str().unwrap()),
        "{read}"
    );
    let content =
        std::fs::read_to_string(Path::new(read["params"]["path"].as_str().unwrap())).unwrap();
    editor
        .send(&json!({"jsonrpc": "2.0", "id": read["id"], "result": {"content": content}}))
        .await;
    let said = editor
        .wait_for_within("the agent's answer", AGENT_PATIENCE, |v| {
            v["params"]["update"]["content"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("read: "))
        })
        .await;
    assert_eq!(
        said["params"]["update"]["content"]["text"],
        "read: hello from the host\n"
    );
    let done = editor
        .wait_for_within("the prompt's end", AGENT_PATIENCE, |v| {
            v.get("id") == Some(&id)
        })
        .await;
    assert_eq!(done["result"]["stopReason"], "end_turn", "{done}");
    drop(editor);
    let _ = bridge.kill().await;

    // stop: no container, no daemon, no agent process. The agents' host pids are taken from
    // the container before it goes.
    let top = world.podman(&["top", &name, "hpid", "args"]);
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    let agent_pids: Vec<String> = top
        .lines()
        .filter(|l| l.contains("acp") || l.contains("fixture-agent"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(
        agent_pids.len() >= 3,
        "claude, codex and the fixture run: {top}"
    );
    let daemon = format!("acp --runtime podman {name} ");
    assert_eq!(
        processes_with(&daemon).len(),
        1,
        "the daemon runs before the stop"
    );
    let (code, _, stderr) = world.run(&["stop", &name], Duration::from_secs(120)).await;
    assert_eq!(code, Some(0), "stop failed:\n{stderr}");
    let gone = world.podman(&["container", "exists", &name]);
    assert_eq!(gone.status.code(), Some(1), "the container is still there");
    let socket = world.path(&format!("run/acp/{name}.sock"));
    common::eventually("the daemon and the agents to end", || {
        processes_with(&daemon).is_empty()
            && !socket.exists()
            && agent_pids
                .iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    })
    .await;
}

/// The vault on the real image: `auth` stores a key in terok-sandbox's encrypted vault; `run`
/// mints the container's phantom token and starts its broker (terok-sandbox's supervisor); a
/// request made inside the container with nothing but the environment `run` gave it reaches the
/// upstream through the in-container bridge and the broker, carrying the real key and never the
/// token; `stop` revokes the token and ends the broker.
#[tokio::test]
async fn a_request_from_inside_reaches_the_upstream_with_the_real_key() {
    let Some(python) = common::vault::sandbox_python() else {
        return;
    };
    let Some(mut world) = World::new() else {
        return;
    };
    let l1 = build_l1(&world).await;

    // A vault as terok-sandbox makes it, unlocked by a passphrase command.
    let sandbox = python.with_file_name("terok-sandbox");
    std::fs::create_dir_all(world.path("config")).unwrap();
    std::fs::create_dir_all(world.path("state/vault")).unwrap();
    std::fs::write(
        world.path("config/config.yml"),
        format!(
            "credentials:\n  use_keyring: false\n  passphrase_command: \"printf e2e-pass\"\n\
             vault:\n  required: true\n  sandbox_command: {}\n",
            sandbox.display()
        ),
    )
    .unwrap();
    let made = std::process::Command::new(&python)
        .args([
            "-c",
            "from terok_sandbox import SandboxConfig; SandboxConfig().open_credential_db().close()",
        ])
        .env("TEROK_CONFIG_FILE", world.path("config/config.yml"))
        .env("TEROK_VAULT_DIR", world.path("state/vault"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = "sk-ant-e2e-real-key";
    std::fs::write(world.path("key"), format!("{key}\n")).unwrap();
    let key_file = world.path("key").display().to_string();
    let (code, _, stderr) = world
        .run(
            &["auth", "claude", "--api-key-file", &key_file],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(code, Some(0), "auth: {stderr}");
    let (code, _, stderr) = world
        .run(&["vault", "routes"], Duration::from_secs(60))
        .await;
    assert_eq!(code, Some(0), "vault routes: {stderr}");
    let routes_path = world.path("state/vault/routes.json");
    let mut routes: Value =
        serde_json::from_str(&std::fs::read_to_string(&routes_path).unwrap()).unwrap();
    let (upstream, seen) = common::vault::mock_upstream();
    routes["anthropic"]["upstream"] = json!(format!("http://127.0.0.1:{upstream}"));
    std::fs::write(&routes_path, routes.to_string()).unwrap();

    // The project's own instructions and a sub-agent: the model's requests must carry both,
    // from the shell function and from the ACP adapter.
    std::fs::create_dir_all(world.path("workspace/.terok/agents")).unwrap();
    std::fs::write(
        world.path("workspace/.terok/instructions.md"),
        "PROJECT-INSTRUCTIONS-MARK\n",
    )
    .unwrap();
    std::fs::write(
        world.path("workspace/.terok/agents/zebra-checker.md"),
        "---\ndescription: Checks zebras (SUBAGENT-MARK)\ntools: Read\n---\nYou check zebras.\n",
    )
    .unwrap();

    let name = format!("terok-vault-{}", std::process::id());
    world.containers.push(name.clone());
    let (code, stdout, stderr) = world
        .run(
            &["run", "claude", ".", "--image", &l1, "--name", &name],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(code, Some(0), "run failed:\n{stderr}");
    assert_eq!(stdout.trim(), name);
    assert!(stderr.contains("vault tokens for: anthropic"), "{stderr}");
    assert!(
        !stdout.contains("terok-p-") && !stderr.contains("terok-p-"),
        "{stderr}"
    );
    let sidecar = world.path(&format!("state/vault-broker/sidecar/{name}.json"));
    let sidecar_arg = sidecar.display().to_string();
    assert_eq!(
        processes_with(&sidecar_arg)
            .iter()
            .filter(|p| p.contains(" supervisor "))
            .count(),
        1,
        "one supervisor serves the container"
    );

    // Inside: only the container's own environment (the bridge may still be starting).
    let script = r#"for i in $(seq 50); do
          code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $ANTHROPIC_API_KEY" \
                 "$ANTHROPIC_BASE_URL/v1/models") && [ "$code" != 000 ] && break
          sleep 0.2
        done
        echo "$code"
        curl -s -o /dev/null -w '%{http_code}\n' -H "x-api-key: terok-p-00000000000000000000000000000000" \
             "$ANTHROPIC_BASE_URL/v1/models"
        printf '%s\n' "$ANTHROPIC_API_KEY""#;
    let out = world.podman(&["exec", &name, "bash", "-c", script]);
    let inside = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[..2], ["200", "401"], "{inside}");
    let token = lines[2];
    assert!(
        token.starts_with("terok-p-") && token.len() == 40,
        "{inside}"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            1,
            "only the valid token went upstream: {seen:?}"
        );
        let headers = &seen[0];
        assert!(headers[0].starts_with("GET /v1/models"), "{headers:?}");
        assert!(
            headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&format!("x-api-key: {key}"))),
            "{headers:?}"
        );
        assert!(
            !headers.iter().any(|h| h.contains("terok-p-")),
            "{headers:?}"
        );
    }
    let broker_log =
        std::fs::read_to_string(world.path(&format!("state/vault-broker/logs/{name}.log")))
            .unwrap_or_default();
    assert!(
        !broker_log.contains(token) && !broker_log.contains(key),
        "{broker_log}"
    );

    // doctor sees the same: the vault, the tokens, the bridge, the wrappers.
    let (code, stdout, stderr) = world
        .run(&["doctor", &name, "--json"], Duration::from_secs(120))
        .await;
    let checks: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(code, Some(0), "{checks:#}");
    for check in [
        "vault",
        "routes",
        "broker",
        "container",
        "vault-env",
        "vault-bridge",
        "wrappers",
    ] {
        let found = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check)
            .unwrap_or_else(|| panic!("no {check} check: {checks:#}"));
        assert_eq!(found["verdict"], "ok", "{found}");
    }
    assert!(
        !stdout.contains(token) && !stdout.contains(key),
        "no secret in doctor's output"
    );

    // The shell function: claude refuses its login subcommand, and a headless run reaches the
    // model (the mock) with the task's instructions and sub-agent; Claude's session hook
    // records the session for a resume.
    let out = world.podman(&[
        "exec",
        "-e",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        &name,
        "bash",
        "-lc",
        "cd /workspace; type -t claude; claude setup-token 2>&1; \
         claude --terok-timeout 120 -p 'say hi' >/dev/null 2>&1; cat ~/.terok/claude-session.txt",
    ]);
    let inside = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[0], "function", "{inside}");
    assert!(
        lines[1].contains("not available in a terok container")
            && lines[2].contains("terok-executor auth claude"),
        "{inside}"
    );
    let session_id = lines.get(3).copied().unwrap_or_default();
    assert!(
        session_id.len() == 36 && session_id.matches('-').count() == 4,
        "the hook recorded a session id: {inside}"
    );
    let model_requests = |seen: &common::vault::Seen| -> Vec<String> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|r| r[0].starts_with("POST /v1/messages"))
            .filter_map(|r| {
                r.last()
                    .and_then(|l| l.strip_prefix("body: "))
                    .map(str::to_owned)
            })
            .collect()
    };
    let bodies = model_requests(&seen);
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("PROJECT-INSTRUCTIONS-MARK") && b.contains("SUBAGENT-MARK")),
        "the CLI's requests carry the instructions and the sub-agent: {} requests",
        bodies.len()
    );

    // The ACP adapter gets both too, from the daemon's session defaults.
    let before = bodies.len();
    let (mut bridge, mut editor) = world.editor(&name);
    editor
        .call(
            "initialize",
            json!({"protocolVersion": 1, "clientCapabilities": EDITOR_CAPS.clone(),
                   "clientInfo": {"name": "e2e", "version": "1"}}),
        )
        .await;
    let session = editor
        .call(
            "session/new",
            json!({"cwd": world.path("workspace"), "mcpServers": []}),
        )
        .await;
    let sid = session["sessionId"].as_str().expect("a session").to_owned();
    let id = editor
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "say hi"}]}),
        )
        .await;
    tokio::time::timeout(AGENT_PATIENCE, editor.response(&id))
        .await
        .expect("the turn ends (the mock's answer is no message)");
    let bodies = model_requests(&seen);
    assert!(
        bodies[before..]
            .iter()
            .any(|b| b.contains("PROJECT-INSTRUCTIONS-MARK") && b.contains("SUBAGENT-MARK")),
        "the adapter's requests carry the instructions and the sub-agent: {} new requests",
        bodies.len() - before
    );
    drop(editor);
    let _ = bridge.kill().await;

    // stop: the token is revoked, the broker and its directory are gone.
    let (code, _, stderr) = world.run(&["stop", &name], Duration::from_secs(120)).await;
    assert_eq!(code, Some(0), "stop failed:\n{stderr}");
    let row = std::process::Command::new(&python)
        .args([
            "-c",
            &format!(
                "from terok_sandbox import SandboxConfig\ndb = SandboxConfig().open_credential_db()\n\
                 print(db.lookup_token('{token}'))"
            ),
        ])
        .env("TEROK_CONFIG_FILE", world.path("config/config.yml"))
        .env("TEROK_VAULT_DIR", world.path("state/vault"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&row.stdout).trim(), "None");
    let broker_dir = world.path(&format!("sb/run/{name}"));
    common::eventually("the broker to end", || {
        processes_with(&sidecar_arg).is_empty() && !broker_dir.exists() && !sidecar.exists()
    })
    .await;
}

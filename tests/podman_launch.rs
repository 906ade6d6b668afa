//! Image builds and container launches on a real Podman (the private setup of
//! `.ci/podman-env.sh`): `build` from a locally imported base, `run` headless and with `--acp`,
//! the hardening as Podman reports it, `list` and `stop`.
//!
//! No registry is reachable, so the images are built with the test templates in
//! `tests/fixtures/images/templates` (the real templates' skeleton without package installs) and
//! the test-only roster entry `probe`, whose install snippets need no network. Every test has its
//! own base image, so its L0/L1 tags and containers are its own; a guard removes them even when
//! the test fails. Without Podman the tests skip, except under CI, where they fail.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use common::{podman_env, repo};

use terok_executor::podman::{connect_to, Endpoint};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");
/// Deadline of one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// One test's world: its Podman variables, terok directories, base image and cleanup list.
struct World {
    vars: HashMap<String, String>,
    dir: tempfile::TempDir,
    base: String,
    containers: Vec<String>,
    images: Vec<String>,
}

impl World {
    /// Imports a busybox base image for test `name` (unique per test and process).
    fn new(name: &str) -> Option<World> {
        let vars = podman_env()?.clone();
        let dir = tempfile::Builder::new()
            .prefix("terok-launch-")
            .tempdir()
            .unwrap();
        let agents = dir.path().join("config/agent/agents");
        std::fs::create_dir_all(&agents).unwrap();
        std::fs::copy(
            repo().join("tests/fixtures/images/agents/probe.yaml"),
            agents.join("probe.yaml"),
        )
        .unwrap();
        // As root, Podman maps no user namespace: the container's dev user (uid 1000) writes
        // to the workspace through its mode.
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::set_permissions(&workspace, std::fs::Permissions::from_mode(0o777)).unwrap();
        // `bash -lc` in the container command: busybox sh stands in for bash.
        let fake_bash = dir.path().join("bash");
        std::fs::write(&fake_bash, "#!/bin/sh\nexec /bin/sh \"$@\"\n").unwrap();
        let base = format!("localhost/terok-launch-{name}-{}:test", std::process::id());
        // A file naming the world makes its image id its own: worlds built from identical
        // content would share one image, and one world's cleanup would take another's base.
        let stamp = dir.path().join("world");
        std::fs::write(&stamp, &base).unwrap();
        let world = World {
            vars,
            dir,
            base: base.clone(),
            containers: Vec::new(),
            images: vec![base.clone()],
        };
        let out = world
            .bash(&format!(
                "terok_build_test_image {base} '' bash={} /etc/terok-world={}",
                fake_bash.display(),
                stamp.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "base image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(world)
    }

    /// A shell with the setup script sourced (for its helper functions).
    fn bash(&self, script: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!(
                "export TEROK_PODMAN_QUIET=1; source .ci/podman-env.sh >&2 && {script}"
            ))
            .current_dir(repo())
            .envs(&self.vars);
        cmd
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary with this world's Podman and terok directories (nothing from our own env).
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
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().await.unwrap();
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `build` of the probe selection with the test templates.
    async fn build(&mut self, extra: &[&str]) -> Output {
        let templates = repo().join("tests/fixtures/images/templates");
        let mut args = vec![
            "build",
            "--base",
            &self.base,
            "--family",
            "deb",
            "--agents",
            "probe",
            "--plain",
            "--templates",
            templates.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args).await;
        let tags: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
        self.images.extend(tags.into_iter().rev());
        out
    }

    /// `run probe . --base <base> --name <stem>-<pid> <extra>`; the name (cleaned up with the
    /// world) and the outcome.
    async fn run_probe(&mut self, stem: &str, extra: &[&str]) -> (String, Output) {
        let name = format!("{stem}-{}", std::process::id());
        self.containers.push(name.clone());
        let base = self.base.clone();
        let mut args = vec!["run", "probe", ".", "--base", &base, "--name", &name];
        args.extend_from_slice(extra);
        let out = self.run(&args).await;
        (name, out)
    }

    async fn docker(&self) -> Docker {
        let host = &self.vars["CONTAINER_HOST"];
        let path = host.strip_prefix("unix://").unwrap_or(host);
        connect_to(vec![Endpoint::Unix(PathBuf::from(path))])
            .await
            .expect("podman API")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = std::process::Command::new("podman")
                .args(args)
                .envs(&self.vars)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        for c in &self.containers {
            quiet(&["rm", "-f", "-v", "-t", "0", c]);
        }
        for image in &self.images {
            quiet(&["rmi", "-f", image]);
        }
    }
}

#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn with_timeout(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

/// Runs `cmd` in `image` with the Podman CLI and returns its stdout.
fn podman_run(world: &World, image: &str, script: &str) -> String {
    podman(world, &["run", "--rm", image, "sh", "-c", script])
}

/// Runs the Podman CLI with this world's variables; its stdout (a failure fails the test).
fn podman(world: &World, args: &[&str]) -> String {
    let out = std::process::Command::new("podman")
        .args(args)
        .envs(&world.vars)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn build_from_a_local_base_labels_the_image_and_writes_the_manifest() {
    let Some(mut world) = World::new("build") else {
        return;
    };
    with_timeout(async {
        let out = world.build(&[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let tags: Vec<&str> = out.stdout.lines().collect();
        let base_tag = world.base.replace(['/', ':'], "-");
        assert_eq!(
            tags,
            [
                format!("terok-l0:{base_tag}"),
                format!("terok-l1-cli:{base_tag}-probe")
            ]
        );
        // Plain output: the builder's step lines as they come.
        assert!(out.stderr.contains("STEP 1/"), "{}", out.stderr);
        assert!(out.stderr.contains(&format!("built {}", tags[1])));

        let docker = world.docker().await;
        let l1 = docker.inspect_image(tags[1]).await.unwrap();
        let labels = l1.config.unwrap().labels.unwrap();
        assert_eq!(labels["ai.terok.agents"], "probe");
        let repo_tags = l1.repo_tags.unwrap();
        assert!(repo_tags.iter().any(|t| t == &format!("localhost/{}", tags[1])), "{repo_tags:?}");

        let inside = podman_run(
            &world,
            tags[1],
            "cat /etc/terok/installed.env /etc/probe-root /home/dev/.probe-dev /etc/terok-test-family; \
             cat /usr/local/share/terok/help.d/agents.txt; test -x /usr/local/bin/probe-staged && echo staged; \
             test -e /tmp/terok-scripts || echo cleaned",
        );
        assert_eq!(
            inside,
            "TEROK_INSTALLED_AGENTS=probe\nroot deb\ndev deb\ndeb\n  \u{1b}[36mprobe\u{1b}[0m      - test agent\nstaged\ncleaned\n"
        );

        // Existing images are not built again.
        let again = world.build(&[]).await;
        assert_eq!(again.code, Some(0), "{again:?}");
        assert!(again.stderr.contains("images exist"), "{}", again.stderr);
        assert!(!again.stderr.contains("STEP"));

        // Changed templates make the images out of date: both are built again, and labelled
        // with the new context's fingerprint.
        let before = labels["ai.terok.context"].clone();
        assert_eq!(before.len(), 64, "{labels:?}");
        let changed = world.path("templates");
        std::fs::create_dir_all(&changed).unwrap();
        let templates = repo().join("tests/fixtures/images/templates");
        for file in ["l0.dev.Dockerfile.template", "l1.agent-cli.Dockerfile.template"] {
            std::fs::copy(templates.join(file), changed.join(file)).unwrap();
        }
        let l0_template = changed.join("l0.dev.Dockerfile.template");
        let mut text = std::fs::read_to_string(&l0_template).unwrap();
        text.push_str("\n# changed\n");
        std::fs::write(&l0_template, text).unwrap();
        let base = world.base.clone();
        let rebuilt = world
            .run(&[
                "build", "--base", &base, "--family", "deb", "--agents", "probe", "--plain",
                "--templates", changed.to_str().unwrap(),
            ])
            .await;
        assert_eq!(rebuilt.code, Some(0), "{rebuilt:?}");
        for tag in &tags {
            assert!(
                rebuilt.stderr.contains(&format!("{tag} was built from other scripts or templates")),
                "{}",
                rebuilt.stderr
            );
        }
        let l1 = docker.inspect_image(tags[1]).await.unwrap();
        let after = &l1.config.unwrap().labels.unwrap()["ai.terok.context"];
        assert_eq!(after.len(), 64);
        assert_ne!(*after, before);
    })
    .await;
}

#[tokio::test]
async fn a_failed_build_step_shows_its_output() {
    let Some(mut world) = World::new("fail") else {
        return;
    };
    with_timeout(async {
        std::fs::write(
            world.path("config/agent/agents/probe.yaml"),
            "roster_version: 1\nkind: native\nbinary: sh\ninstall:\n  run_as_root: |\n    RUN echo boom-before-failure && false\n",
        )
        .unwrap();
        let out = world.build(&[]).await;
        assert_ne!(out.code, Some(0));
        assert!(out.stderr.contains("boom-before-failure"), "{}", out.stderr);
        assert!(out.stderr.contains("failed: RUN echo boom-before-failure"), "{}", out.stderr);
        // The L0 was built before the failure; remove it too.
        let base_tag = world.base.replace(['/', ':'], "-");
        world.images.push(format!("terok-l0:{base_tag}"));
    })
    .await;
}

async fn container_labels_and_host(
    docker: &Docker,
    name: &str,
) -> (HashMap<String, String>, bollard::models::HostConfig, bool) {
    let c = docker.inspect_container(name, None).await.unwrap();
    let running = c.state.and_then(|s| s.running).unwrap_or(false);
    (
        c.config.unwrap().labels.unwrap(),
        c.host_config.unwrap(),
        running,
    )
}

fn acp_daemon_supports_podman() -> bool {
    let out = std::process::Command::new(BIN)
        .args(["acp", "--help"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("podman")
}

#[tokio::test]
async fn run_headless_acp_list_and_stop_with_hardening() {
    let Some(mut world) = World::new("run") else {
        return;
    };
    with_timeout(async {
        let out = world.build(&[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let docker = world.docker().await;
        let base = world.base.clone();

        // Headless: the agent's output and exit code (the probe agent is `sh -c <prompt>`). The
        // agent config directory holds the wrapper file and the project's sub-agents (the
        // functions themselves run in the real image: tests/real_images.rs).
        std::fs::create_dir_all(world.path("workspace/.terok/agents")).unwrap();
        std::fs::write(
            world.path("workspace/.terok/agents/helper.md"),
            "---\ndescription: helps\n---\nHelp.\n",
        )
        .unwrap();
        let (headless, out) = world
            .run_probe(
                "tx-headless",
                &[
                    "-p",
                    "echo out-$(id -un); cat /etc/terok/installed.env; echo x > /workspace/made-here; \
                     touch /usr/nope 2>/dev/null || echo ro-root; touch /tmp/t ~/h && echo writable; \
                     grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; \
                     grep -o '\"prompt\":\"Help.\"' ~/.terok/agents.json; \
                     test -s ~/.terok/terok-executor.sh && echo wrappers; exit 7",
                ],
            )
            .await;
        assert_eq!(out.code, Some(7), "{out:?}");
        assert_eq!(
            out.stdout,
            "out-dev\nTEROK_INSTALLED_AGENTS=probe\nro-root\nwritable\n\
             CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\n\
             \"prompt\":\"Help.\"\nwrappers\n"
        );
        assert!(
            world.path("workspace/made-here").exists(),
            "workspace is mounted"
        );

        // Headless overrides: a timeout ends the agent (exit 124, said on stderr); an override
        // the agent has no flag for is a warning.
        let (_, out) = world
            .run_probe(
                "tx-timeout",
                &["--timeout", "2s", "--max-turns", "3", "-p", "echo started; sleep 60; echo never"],
            )
            .await;
        assert_eq!(out.code, Some(124), "{out:?}");
        assert_eq!(out.stdout, "started\n");
        assert!(
            out.stderr
                .contains("probe has no max-turns option; --max-turns 3 is ignored")
                && out.stderr.contains("ended after its --timeout of 2s"),
            "{}",
            out.stderr
        );

        // Hardening as Podman reports it.
        let (labels, host, _) = container_labels_and_host(&docker, &headless).await;
        assert_eq!(labels["ai.terok.executor"], "1");
        assert_eq!(labels["ai.terok.executor.agent"], "probe");
        assert_eq!(labels["ai.terok.executor.mode"], "headless");
        // Podman reports `ALL` expanded to the capabilities it would otherwise grant.
        let caps = host.cap_drop.unwrap_or_default();
        for cap in [
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "KILL",
            "NET_BIND_SERVICE",
            "SETGID",
            "SETUID",
        ] {
            assert!(
                caps.iter()
                    .any(|c| c == "ALL" || c.trim_start_matches("CAP_") == cap),
                "{cap} not dropped: {caps:?}"
            );
        }
        assert!(host.cap_add.unwrap_or_default().is_empty());
        let secopt = host.security_opt.unwrap_or_default();
        assert!(
            secopt.iter().any(|o| o.starts_with("no-new-privileges")),
            "{secopt:?}"
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.pids_limit, Some(4096));
        assert_eq!(host.memory, Some(8 << 30));
        let tmpfs = host.tmpfs.unwrap_or_default();
        assert!(
            tmpfs.contains_key("/tmp") && tmpfs.contains_key("/run"),
            "{tmpfs:?}"
        );

        // --acp: the container stays up and gets an endpoint (or, while the daemon has no Podman
        // runtime, a clear error with the container left running).
        let acp = format!("tx-acp-{}", std::process::id());
        world.containers.push(acp.clone());
        let out = world
            .run(&[
                "run", "probe", ".", "--base", &base, "--name", &acp, "--acp",
            ])
            .await;
        let (labels, _, running) = container_labels_and_host(&docker, &acp).await;
        assert!(running, "{out:?}");
        assert_eq!(labels["ai.terok.executor.mode"], "acp");
        let socket = world.path(&format!("run/acp/{acp}.sock"));
        if acp_daemon_supports_podman() {
            assert_eq!(out.code, Some(0), "{out:?}");
            assert_eq!(
                out.stdout.trim(),
                format!("terok-executor acp connect {acp}")
            );
            assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());
        } else {
            assert_ne!(out.code, Some(0));
            assert!(
                out.stderr.contains("runs, but its ACP daemon does not"),
                "{}",
                out.stderr
            );
            let log = std::fs::read_to_string(world.path(&format!("run/acp/{acp}.log"))).unwrap();
            assert!(log.contains("podman"), "{log}");
        }

        // Unrestricted relaxes each restriction.
        let loose = format!("tx-loose-{}", std::process::id());
        world.containers.push(loose.clone());
        let out = world
            .run(&[
                "run",
                "probe",
                ".",
                "--base",
                &base,
                "--name",
                &loose,
                "--unrestricted",
            ])
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout.trim(), loose);
        assert!(out
            .stderr
            .contains(&format!("podman exec -it {loose} bash -l")));
        let (_, host, running) = container_labels_and_host(&docker, &loose).await;
        assert!(running);
        assert!(host.cap_drop.unwrap_or_default().is_empty());
        assert!(!host
            .security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o.starts_with("no-new-privileges")));
        assert_ne!(host.readonly_rootfs, Some(true));
        assert_eq!(host.memory.unwrap_or(0), 0);

        // list shows ours; stop removes them and refuses foreign containers.
        let out = world.run(&["list", "--json"]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        let listed: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
        for name in [&headless, &acp, &loose] {
            assert!(listed.contains(&name.as_str()), "{listed:?}");
        }
        let out = world.run(&["stop", &headless, &acp, &loose]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        for name in [&headless, &acp, &loose] {
            let gone = docker.inspect_container(name, None).await.unwrap_err();
            assert!(
                terok_executor::podman::is_not_found(&gone),
                "{name}: {gone}"
            );
        }
        assert!(!world.path(&format!("run/executor/{acp}")).exists());
        let out = world.run(&["stop", "no-such-container-here"]).await;
        assert_ne!(out.code, Some(0));
        assert!(out.stderr.contains("no container named"), "{}", out.stderr);
    })
    .await;
}

/// With a vault that holds a credential, `run` gives the container a phantom token (never the
/// key, never printed) and `stop` revokes it. The vault is terok-sandbox's own (its Python, as
/// in `tests/vault.rs`). Without terok-sandbox's broker the launch warns, or fails with
/// `vault.required` and leaves no token and no container behind. (The broker itself serves a
/// container in `tests/real_images.rs`.)
#[tokio::test]
async fn run_mints_vault_tokens_and_stop_revokes_them() {
    let Some(python) = common::vault::sandbox_python() else {
        return;
    };
    let Some(mut world) = World::new("vault") else {
        return;
    };
    with_timeout(async {
        std::fs::create_dir_all(world.path("state/vault")).unwrap();
        let config = "credentials:\n  use_keyring: false\n  passphrase_command: \"printf launch-pass\"\n\
                      vault:\n  sandbox_command: /nonexistent/terok-sandbox\n";
        std::fs::write(world.path("config/config.yml"), config).unwrap();
        let (config_file, vault_dir) = (world.path("config/config.yml"), world.path("state/vault"));
        let py = |code: &str| {
            let out = std::process::Command::new(&python)
                .arg("-c")
                .arg(format!("import json\nfrom terok_sandbox import SandboxConfig\ndb = SandboxConfig().open_credential_db()\n{code}\ndb.close()"))
                .env("TEROK_CONFIG_FILE", &config_file)
                .env("TEROK_VAULT_DIR", &vault_dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        py("db.store_credential('default', 'anthropic', {'type': 'api_key', 'key': 'sk-real-never-inside'})");

        let out = world.build(&[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let base = world.base.clone();
        let name = format!("tx-vault-{}", std::process::id());
        world.containers.push(name.clone());
        let out = world
            .run(&[
                "run", "probe", ".", "--base", &base, "--name", &name, "-p",
                "echo key=$ANTHROPIC_API_KEY; echo url=$ANTHROPIC_BASE_URL; env | grep -c sk-real || true",
            ])
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        let token = lines[0].strip_prefix("key=").unwrap();
        assert!(token.starts_with("terok-p-") && token.len() == 40, "{lines:?}");
        assert_eq!(lines[1], "url=http://localhost:9419");
        assert_eq!(lines[2], "0", "the real key is nowhere in the container");
        assert!(!out.stderr.contains(token), "{}", out.stderr);
        assert!(out.stderr.contains("vault tokens for: anthropic"), "{}", out.stderr);
        assert!(
            out.stderr.contains("no broker will serve the vault tokens")
                && out.stderr.contains("/nonexistent/terok-sandbox"),
            "{}",
            out.stderr
        );
        let row = py(&format!("print(json.dumps(db.lookup_token('{token}')))"));
        let row: serde_json::Value = serde_json::from_str(&row).unwrap();
        assert_eq!(row["subject"], name.as_str());
        assert_eq!(row["provider"], "anthropic");

        let out = world.run(&["stop", &name]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(py(&format!("print(json.dumps(db.lookup_token('{token}')))")), "null");

        // Sealed, in socket mode: no broker could serve tokens, so there are none.
        let (sealed, out) = world
            .run_probe(
                "tx-vault-sealed",
                &["--sealed", "-p", "echo key=${ANTHROPIC_API_KEY:-none}"],
            )
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout, "key=none\n");
        assert!(
            out.stderr
                .contains("a sealed container gets no vault tokens in socket mode"),
            "{}",
            out.stderr
        );
        let count = format!(
            "print(db._conn.execute(\"SELECT count(*) FROM proxy_tokens WHERE subject = '{sealed}'\").fetchone()[0])"
        );
        assert_eq!(py(&count), "0", "its tokens are revoked");

        // vault.required: no broker is an error, and the launch takes its token back.
        std::fs::write(world.path("config/config.yml"), format!("{config}  required: true\n")).unwrap();
        let strict = format!("tx-vault-strict-{}", std::process::id());
        world.containers.push(strict.clone());
        let out = world
            .run(&["run", "probe", ".", "--base", &base, "--name", &strict, "-p", "true"])
            .await;
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(
            out.stderr.contains("the vault is required") && out.stderr.contains("terok-sandbox"),
            "{}",
            out.stderr
        );
        let count = format!(
            "print(db._conn.execute(\"SELECT count(*) FROM proxy_tokens WHERE subject = '{strict}'\").fetchone()[0])"
        );
        assert_eq!(py(&count), "0");
        let docker = world.docker().await;
        let gone = docker.inspect_container(&strict, None).await.unwrap_err();
        assert!(terok_executor::podman::is_not_found(&gone), "{gone}");
        assert!(!world.path(&format!("sb/run/{strict}")).exists());
        assert!(
            !world.path(&format!("run/executor/{strict}")).exists(),
            "a failed launch leaves no task directory"
        );

        // storage: a task whose container was removed behind our back is reclaimable.
        std::fs::write(world.path("config/config.yml"), config).unwrap();
        let (orphan, out) = world.run_probe("tx-vault-orphan", &[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let usage = |out: &Output| -> serde_json::Value {
            assert_eq!(out.code, Some(0), "{out:?}");
            let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            all["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == orphan.as_str())
                .cloned()
                .unwrap_or_else(|| panic!("{orphan} in {all}"))
        };
        let task = usage(&world.run(&["storage", "--json"]).await);
        assert_eq!(task["container_exists"], true, "{task}");
        assert!(task["bytes"].as_u64().unwrap() > 0, "{task}");
        // Removed with the Podman CLI, as a user might, without `stop`.
        podman(&world, &["rm", "-f", "-t", "0", &orphan]);
        let out = world.run(&["storage", "--json"]).await;
        let task = usage(&out);
        assert_eq!(task["container_exists"], false, "{task}");
        let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert!(all["reclaimable_bytes"].as_u64().unwrap() >= task["bytes"].as_u64().unwrap());
        let table = world.run(&["storage"]).await;
        assert!(table.stdout.contains("gone (reclaimable)"), "{table:?}");
    })
    .await;
}

/// `doctor` on a healthy container passes; with a real-looking credential file in a shared
/// mount it fails and names the fix.
#[tokio::test]
async fn doctor_passes_a_healthy_container_and_names_the_fix_for_a_leak() {
    let Some(mut world) = World::new("doctor") else {
        return;
    };
    with_timeout(async {
        let out = world.build(&[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let (name, out) = world.run_probe("tx-doctor", &[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let out = world.run(&["vault", "routes"]).await;
        assert_eq!(out.code, Some(0), "{out:?}");

        let doctor = |out: &Output| -> serde_json::Value {
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
        };
        let verdict = |checks: &serde_json::Value, name: &str| -> serde_json::Value {
            checks
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} check in {checks}"))
        };
        let out = world.run(&["doctor", &name, "--json"]).await;
        let checks = doctor(&out);
        assert_eq!(out.code, Some(0), "{checks:#}");
        for (check, expected) in [
            ("podman", "ok"),
            ("routes", "ok"),
            ("shared-mounts", "ok"),
            ("container", "ok"),
            ("vault", "skip"),
        ] {
            assert_eq!(verdict(&checks, check)["verdict"], expected, "{checks:#}");
        }

        // A real login left in the shared Claude config mount.
        let leak = world.path("state/sandbox-live/mounts/_claude-config/.credentials.json");
        std::fs::create_dir_all(leak.parent().unwrap()).unwrap();
        std::fs::write(
            &leak,
            r#"{"claudeAiOauth": {"accessToken": "sk-ant-oat01-looks-real", "refreshToken": "sk-ant-ort01-too"}}"#,
        )
        .unwrap();
        let out = world.run(&["doctor", &name, "--json"]).await;
        let checks = doctor(&out);
        assert_eq!(out.code, Some(1), "{checks:#}");
        let mounts = verdict(&checks, "shared-mounts");
        assert_eq!(mounts["verdict"], "fail", "{mounts}");
        assert!(
            mounts["detail"].as_str().unwrap().contains(".credentials.json")
                && mounts["fix"].as_str().unwrap().contains("terok-executor vault clean"),
            "{mounts}"
        );
        assert!(!out.stdout.contains("looks-real"), "never the secret");
        let text = world.run(&["doctor", &name]).await;
        assert!(
            text.stdout.contains("FAIL  shared-mounts") && text.stdout.contains("1 failed"),
            "{text:?}"
        );
        let out = world.run(&["doctor", "tx-no-such-container"]).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stdout.contains("no container named tx-no-such-container"), "{out:?}");
    })
    .await;
}

/// The preflight: a missing image stops `run` before anything is created, with the fix; with
/// `--yes` the same command builds it and runs.
#[tokio::test]
async fn preflight_names_a_missing_image_and_yes_builds_it() {
    let Some(mut world) = World::new("preflight") else {
        return;
    };
    with_timeout(async {
        let templates = repo().join("tests/fixtures/images/templates");
        let templates = templates.to_str().unwrap().to_owned();
        let image_args = ["--family", "deb", "--templates", &templates, "--plain"];
        let base_tag = world.base.replace(['/', ':'], "-");
        world.images.push(format!("terok-l1-cli:{base_tag}-probe"));
        world.images.push(format!("terok-l0:{base_tag}"));

        let mut args = image_args.to_vec();
        args.extend(["-p", "echo ran"]);
        let (name, out) = world.run_probe("tx-preflight", &args).await;
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("terok-l0:{base_tag} is missing"))
                && out
                    .stderr
                    .contains(&format!("terok-l1-cli:{base_tag}-probe is missing"))
                && out.stderr.contains("--yes")
                && out
                    .stderr
                    .contains("1 requirement unmet; nothing was started"),
            "{}",
            out.stderr
        );
        let docker = world.docker().await;
        let gone = docker.inspect_container(&name, None).await.unwrap_err();
        assert!(terok_executor::podman::is_not_found(&gone), "{gone}");
        assert!(!world.path(&format!("run/executor/{name}")).exists());

        args.push("--yes");
        let (_, out) = world.run_probe("tx-preflight-yes", &args).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout, "ran\n");
        assert!(out.stderr.contains("STEP 1/"), "it built: {}", out.stderr);
    })
    .await;
}

/// A sealed run: no bind mounts (as Podman reports), the workspace and the agent config copied
/// in, nothing written back to the host; `pull` brings what the agent wrote out, links as links.
#[tokio::test]
async fn a_sealed_run_has_no_bind_mounts_and_pull_brings_results_out() {
    let Some(mut world) = World::new("sealed") else {
        return;
    };
    with_timeout(async {
        let out = world.build(&[]).await;
        assert_eq!(out.code, Some(0), "{out:?}");
        std::fs::write(world.path("workspace/hello.txt"), "from the host\n").unwrap();
        let (name, out) = world
            .run_probe(
                "tx-sealed",
                &[
                    "--sealed",
                    "-p",
                    "cat /workspace/hello.txt; head -1 ~/.terok/instructions.md; id -un; \
                     echo made > /workspace/out.txt; mkdir /workspace/sub; echo deep > /workspace/sub/d.txt; \
                     ln -s /etc/hostname /workspace/link",
                ],
            )
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(
            out.stdout,
            "from the host\n# Working in a terok container\ndev\n"
        );
        let docker = world.docker().await;
        let inspect = docker.inspect_container(&name, None).await.unwrap();
        let host = inspect.host_config.unwrap();
        // Podman lists volumes among the binds too, by volume name: no host path may appear.
        let binds = host.binds.unwrap_or_default();
        assert!(
            binds.iter().all(|b| !b.starts_with('/')),
            "no host path is mounted: {binds:?}"
        );
        let mounts = inspect.mounts.unwrap_or_default();
        assert!(!mounts.is_empty());
        for mount in &mounts {
            assert_eq!(
                mount.typ.as_deref(),
                Some("volume"),
                "{mount:?}"
            );
        }
        assert!(
            !world.path("workspace/out.txt").exists(),
            "nothing reaches the host"
        );

        let dest = world.path("pulled");
        let out = world
            .run(&["pull", &name, "/workspace", "--to", dest.to_str().unwrap()])
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(std::fs::read_to_string(dest.join("out.txt")).unwrap(), "made\n");
        assert_eq!(std::fs::read_to_string(dest.join("sub/d.txt")).unwrap(), "deep\n");
        assert_eq!(
            std::fs::read_to_string(dest.join("hello.txt")).unwrap(),
            "from the host\n"
        );
        let link = std::fs::symlink_metadata(dest.join("link")).unwrap();
        assert!(link.file_type().is_symlink(), "a link stays a link");
        let again = world
            .run(&["pull", &name, "/workspace", "--to", dest.to_str().unwrap()])
            .await;
        assert_ne!(again.code, Some(0));
        assert!(again.stderr.contains("is not empty"), "{again:?}");
        let missing = world.run(&["pull", &name, "/no/such/path"]).await;
        assert_ne!(missing.code, Some(0));
        assert!(missing.stderr.contains("/no/such/path"), "{missing:?}");
    })
    .await;
}

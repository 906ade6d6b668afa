//! The container's vault broker: terok-sandbox's per-container supervisor, started by `run`.
//!
//! A phantom token is only worth something while a broker serves the container. In socket mode
//! `run` gives each container its own directory, `<sandbox runtime dir>/run/<name>`, mounted
//! read-only at `/run/terok`, and writes terok-sandbox's sidecar for it. Once the container
//! runs, `terok-sandbox supervisor <id> <sidecar> <pid>` starts; its vault child binds
//! `vault/vault.sock` in that directory and swaps tokens for the stored credentials on the way
//! upstream. The supervisor watches the container's process and ends itself, and removes the
//! directory, when the container ends; `stop` ends it as well and removes the sidecar.
//!
//! terok-sandbox's own launcher starts the supervisor from an OCI hook that `terok-sandbox
//! setup` registers in Podman's configuration. Starting it here needs no such setup and ties
//! the broker to the launch that minted the tokens; the containers carry no hook annotation,
//! so a registered hook never starts a second one.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::launcher::env::{Sharing, Volume};
use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::vault::location::CONTAINER_RUNTIME_DIR;
use crate::launcher::vault::tokens::STANDALONE_SCOPE;

/// The program that runs the supervisor when the config names none.
const SANDBOX_PROGRAM: &str = "terok-sandbox";
/// How long the vault child may take to bind its socket (it opens the encrypted database
/// first, which runs the passphrase command).
const BIND_PATIENCE: Duration = Duration::from_secs(20);
/// How long `stop` waits for a supervisor to end after SIGTERM.
const STOP_PATIENCE: Duration = Duration::from_secs(5);
/// `sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// One container's broker: where it binds, its sidecar, and how to start it.
#[derive(Debug, Clone)]
pub struct Broker {
    command: Vec<String>,
    dir: PathBuf,
    files: BrokerFiles,
}

/// The files this tool keeps for a container's broker.
#[derive(Debug, Clone)]
struct BrokerFiles {
    sidecar: PathBuf,
    log: PathBuf,
    pid: PathBuf,
}

impl BrokerFiles {
    fn of(paths: &HostPaths, name: &str) -> Self {
        let base = paths.state_dir.join("vault-broker");
        BrokerFiles {
            sidecar: base.join("sidecar").join(format!("{name}.json")),
            log: base.join("logs").join(format!("{name}.log")),
            pid: base.join("pids").join(format!("{name}.pid")),
        }
    }
}

impl Broker {
    /// Prepares container `name`'s broker: finds terok-sandbox, creates the directory the
    /// container will see at `/run/terok` and writes the sidecar.
    pub fn prepare(config: &LayeredConfig, paths: &HostPaths, name: &str) -> anyhow::Result<Self> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("'{name}' cannot name a broker directory");
        }
        let command = sandbox_command(config)?;
        let dir = paths.sandbox_runtime_dir.join("run").join(name);
        let socket = dir.join("vault").join("vault.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "the vault socket {} is longer than a Unix socket path may be; set \
                 TEROK_SANDBOX_RUNTIME_DIR to a shorter directory",
                socket.display()
            );
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(_) => std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear the stale {}", dir.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context(format!("cannot inspect {}", dir.display())),
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;

        let files = BrokerFiles::of(paths, name);
        let sidecar = json!({
            "container_name": name,
            "ipc_mode": "socket",
            "db_path": absolute(&paths.vault_dir.join("credentials.db"))?,
            "runtime_dir": absolute(&paths.sandbox_runtime_dir)?,
            "routes_path": absolute(&paths.routes_path())?,
            "credentials_use_keyring": config
                .value("credentials", "use_keyring")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            "credentials_passphrase_command": config.string("credentials", "passphrase_command"),
            "scope_id": STANDALONE_SCOPE,
            "task_id": name,
        });
        write_private(&files.sidecar, &serde_json::to_vec_pretty(&sidecar)?)?;
        Ok(Broker {
            command,
            dir,
            files,
        })
    }

    /// The mount that shows the container its broker's sockets.
    pub fn volume(&self) -> Volume {
        let mut volume = Volume::new(&self.dir, CONTAINER_RUNTIME_DIR, Sharing::Shared);
        volume.read_only = true;
        volume
    }

    /// The vault socket on the host.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("vault").join("vault.sock")
    }

    /// Starts the supervisor for the running container `id` (whose init is host process
    /// `pid`) and waits until the vault socket is bound. With `owner`, the directory and the
    /// sockets in it are then handed to that uid:gid (rootful Podman: the container's user).
    pub fn start(&self, id: &str, pid: i64, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
        let log = open_log(&self.files.log)?;
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .arg("supervisor")
            .arg(id)
            .arg(&self.files.sidecar)
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C meant for `run` does not reach it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", self.command.join(" ")))?;
        write_private(&self.files.pid, child.id().to_string().as_bytes())?;
        if let Err(e) = self.await_socket(&mut child) {
            terminate(child.id());
            let _ = child.wait();
            return Err(e.context(format!(
                "the vault broker did not come up (its log: {})",
                self.files.log.display()
            )));
        }
        if let Some((uid, gid)) = owner {
            super::ownership::hand_over(&[&self.dir], uid, gid)
                .context("cannot give the broker's sockets to the container's user")?;
        }
        tracing::debug!(socket = %self.socket().display(), pid = child.id(), "vault broker up");
        Ok(())
    }

    fn await_socket(&self, child: &mut Child) -> anyhow::Result<()> {
        let socket = self.socket();
        let deadline = Instant::now() + BIND_PATIENCE;
        loop {
            if std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket()) {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                bail!("the supervisor exited ({status}) before binding the vault socket");
            }
            if Instant::now() >= deadline {
                bail!(
                    "no vault socket at {} after {BIND_PATIENCE:?}",
                    socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Ends container `name`'s broker, if one runs, and removes its sidecar and directory.
pub fn retire(paths: &HostPaths, name: &str) {
    let files = BrokerFiles::of(paths, name);
    if let Some(pid) = std::fs::read_to_string(&files.pid)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    {
        if is_our_supervisor(pid, &files.sidecar) {
            terminate(pid);
            let deadline = Instant::now() + STOP_PATIENCE;
            while is_our_supervisor(pid, &files.sidecar) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    for file in [&files.pid, &files.sidecar] {
        let _ = std::fs::remove_file(file);
    }
    if !name.is_empty() && !name.contains('/') && name != "." && name != ".." {
        let _ = std::fs::remove_dir_all(paths.sandbox_runtime_dir.join("run").join(name));
    }
}

/// The argv that runs terok-sandbox: `vault.sandbox_command` from the config, or
/// `terok-sandbox` from `PATH`.
pub(crate) fn sandbox_command(config: &LayeredConfig) -> anyhow::Result<Vec<String>> {
    if let Some(line) = config.string("vault", "sandbox_command") {
        let mut argv = shlex::split(&line)
            .filter(|a| !a.is_empty())
            .with_context(|| format!("vault.sandbox_command is not a command line: {line}"))?;
        argv[0] = find_program(&argv[0]).with_context(|| {
            format!(
                "vault.sandbox_command names {}, which is not there",
                argv[0]
            )
        })?;
        return Ok(argv);
    }
    match find_program(SANDBOX_PROGRAM) {
        Some(program) => Ok(vec![program]),
        None => bail!(
            "terok-sandbox, whose broker serves the vault tokens, is not on PATH (install it, \
             or set vault.sandbox_command in the config)"
        ),
    }
}

/// `program` itself when it is a path to a file, else the first match on `PATH`.
fn find_program(program: &str) -> Option<String> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Whether process `pid` is a supervisor started for `sidecar` (a recycled pid is not).
fn is_our_supervisor(pid: u32, sidecar: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    args.contains(&b"supervisor".as_slice())
        && args.contains(&sidecar.as_os_str().as_encoded_bytes())
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

fn absolute(path: &Path) -> anyhow::Result<String> {
    let path = std::path::absolute(path)
        .with_context(|| format!("cannot make {} absolute", path.display()))?;
    Ok(path.display().to_string())
}

/// Writes `bytes` to `path` (mode 0600), creating its directory (mode 0700).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::paths::FixedEnv;
    use std::collections::HashMap;

    fn paths(dir: &Path) -> HostPaths {
        let vars = FixedEnv {
            vars: HashMap::from([
                ("HOME".into(), dir.display().to_string()),
                ("TEROK_ROOT".into(), dir.join("state").display().to_string()),
                ("TEROK_CONFIG_FILE".into(), "/nonexistent.yml".into()),
                (
                    "TEROK_SANDBOX_RUNTIME_DIR".into(),
                    dir.join("rt").display().to_string(),
                ),
            ]),
            root: false,
        };
        HostPaths::resolve(&vars)
    }

    fn config(yaml: &str, dir: &Path) -> LayeredConfig {
        let file = dir.join("config.yml");
        std::fs::write(&file, yaml).unwrap();
        LayeredConfig::load(&[file])
    }

    #[test]
    fn prepare_writes_the_sidecar_and_a_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        let config = config(
            "credentials:\n  passphrase_command: printf x\nvault:\n  sandbox_command: sh -c true\n",
            dir.path(),
        );
        let stale = paths.sandbox_runtime_dir.join("run/ctr-1/vault");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("vault.sock"), "").unwrap();
        let broker = Broker::prepare(&config, &paths, "ctr-1").unwrap();
        assert!(broker.command[0].ends_with("/sh"), "{:?}", broker.command);
        assert_eq!(broker.command[1..], ["-c", "true"]);
        assert!(!stale.exists(), "a stale directory is cleared");
        let meta = std::fs::metadata(dir.path().join("rt/run/ctr-1")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o700
        );
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&broker.files.sidecar).unwrap()).unwrap();
        assert_eq!(sidecar["container_name"], "ctr-1");
        assert_eq!(sidecar["ipc_mode"], "socket");
        assert_eq!(
            sidecar["runtime_dir"],
            dir.path().join("rt").display().to_string()
        );
        assert_eq!(
            sidecar["db_path"],
            dir.path()
                .join("state/vault/credentials.db")
                .display()
                .to_string()
        );
        assert_eq!(sidecar["credentials_passphrase_command"], "printf x");
        assert_eq!(sidecar["credentials_use_keyring"], false);
        let volume = broker.volume();
        assert_eq!(volume.container, "/run/terok");
        assert!(volume.read_only);

        retire(&paths, "ctr-1");
        assert!(!broker.files.sidecar.exists());
        assert!(!dir.path().join("rt/run/ctr-1").exists());
    }

    #[test]
    fn unusable_names_paths_and_commands_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        let usable = config("vault:\n  sandbox_command: /bin/true\n", dir.path());
        for name in ["", "..", "a/b"] {
            assert!(Broker::prepare(&usable, &paths, name).is_err(), "{name:?}");
        }
        let long = "x".repeat(120);
        let err = Broker::prepare(&usable, &paths, &long).unwrap_err();
        assert!(
            format!("{err:#}").contains("TEROK_SANDBOX_RUNTIME_DIR"),
            "{err:#}"
        );
        let bad = config_with_quote(dir.path());
        assert!(Broker::prepare(&bad, &paths, "c").is_err());
        let missing = config("vault:\n  sandbox_command: /nonexistent/sb\n", dir.path());
        let err = Broker::prepare(&missing, &paths, "c").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/sb"), "{err:#}");
    }

    fn config_with_quote(dir: &Path) -> LayeredConfig {
        config("vault:\n  sandbox_command: \"'unclosed\"\n", dir)
    }

    #[test]
    fn a_supervisor_that_never_binds_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        let script = dir.path().join("fake-sandbox");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"no vault today: $*\" >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let config = config(
            &format!("vault:\n  sandbox_command: {}\n", script.display()),
            dir.path(),
        );
        let broker = Broker::prepare(&config, &paths, "ctr-2").unwrap();
        let err = broker.start("abc123", 1, None).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("exited"), "{text}");
        assert!(text.contains("ctr-2.log"), "{text}");
        let log = std::fs::read_to_string(&broker.files.log).unwrap();
        assert!(
            log.contains("no vault today: supervisor abc123 ") && log.ends_with(" 1\n"),
            "{log}"
        );
        retire(&paths, "ctr-2");
    }
}

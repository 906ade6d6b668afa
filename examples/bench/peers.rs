//! What the client talks to: the raw pipe (the floor), the proxy daemon as a separate process,
//! and the agent wrappers both of them start.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::client::Client;

/// A directory of `terok-<name>-acp` wrappers running the fixture agent.
pub struct AgentDir {
    pub dir: PathBuf,
}

impl AgentDir {
    /// Wrappers for `names`, each exec'ing the fixture with `flags`.
    pub fn new(
        root: &Path,
        label: &str,
        bin: &Path,
        names: &[&str],
        flags: &str,
    ) -> anyhow::Result<AgentDir> {
        let dir = root.join(label);
        std::fs::create_dir_all(&dir)?;
        for name in names {
            let path = dir.join(format!("terok-{name}-acp"));
            let body = format!(
                "#!/bin/sh\nexec '{}' fixture-agent --name {name} --models m1,m2 {flags}\n",
                bin.display()
            );
            std::fs::write(&path, body)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(AgentDir { dir })
    }

    pub fn wrapper(&self, name: &str) -> PathBuf {
        self.dir.join(format!("terok-{name}-acp"))
    }
}

fn spawn_agent(wrapper: &Path) -> anyhow::Result<Child> {
    Command::new(wrapper)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", wrapper.display()))
}

/// The floor: a Unix socket whose every connection is piped, byte for byte, to a fresh agent.
pub struct RawPipe {
    pub socket: PathBuf,
}

impl RawPipe {
    pub fn start(socket: PathBuf, wrapper: PathBuf) -> anyhow::Result<RawPipe> {
        let listener = UnixListener::bind(&socket)?;
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let wrapper = wrapper.clone();
                std::thread::spawn(move || {
                    if let Err(e) = pipe(stream, &wrapper) {
                        eprintln!("raw pipe: {e:#}");
                    }
                });
            }
        });
        Ok(RawPipe { socket })
    }
}

/// Copies both ways until either side ends, like `socat`: read what is there, write it all.
fn pipe(stream: UnixStream, wrapper: &Path) -> anyhow::Result<()> {
    let mut child = spawn_agent(wrapper)?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut from_client = stream.try_clone()?;
    let upstream = std::thread::spawn(move || {
        let _ = copy(&mut from_client, &mut stdin);
    });
    let mut to_client = stream.try_clone()?;
    let _ = copy(&mut stdout, &mut to_client);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = child.kill();
    let _ = child.wait();
    let _ = upstream.join();
    Ok(())
}

fn copy(from: &mut impl std::io::Read, to: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

/// The real daemon binary serving an agent directory.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
}

impl Daemon {
    pub fn start(
        bin: &Path,
        agents: &AgentDir,
        socket: PathBuf,
        log: &Path,
    ) -> anyhow::Result<Daemon> {
        Daemon::start_with_env(bin, agents, socket, log, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_with_env(
        bin: &Path,
        agents: &AgentDir,
        socket: PathBuf,
        log: &Path,
        env: &[(&str, &Path)],
    ) -> anyhow::Result<Daemon> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["acp", "--runtime", "local"])
            .arg(&agents.dir)
            .arg(&socket)
            .env("RUST_LOG", "warn")
            // A state dir of its own: a persisted probe cache would make cold starts warm.
            .env("TEROK_STATE_DIR", socket.with_extension("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the daemon")?;
        Ok(Daemon { child, socket })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ticks of CPU (user + system) the daemon has used, all threads.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("malformed stat")?
            .1
            .split_whitespace()
            .collect();
        // After the command name: state is field 3, utime 14 and stime 15 (1-based).
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
    }

    /// A `/proc/<pid>/status` memory field, in bytes.
    pub fn memory(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse()?;
                return Ok(kb * 1024);
            }
        }
        bail!("no {field} in status")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    // The kernel's USER_HZ is 100 on every Linux architecture that matters here.
    100.0
}

/// One agent probed alone, the way the daemon probes it: start, `initialize`, `session/new`.
pub fn probe_alone(wrapper: &Path) -> anyhow::Result<Duration> {
    use std::io::{BufRead, BufReader, Write};
    let t0 = Instant::now();
    let mut child = spawn_agent(wrapper)?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {}}});
    let new = json!({"jsonrpc": "2.0", "id": 1, "method": "session/new", "params": {"cwd": "/tmp", "mcpServers": []}});
    let mut line = String::new();
    for frame in [init, new] {
        writeln!(stdin, "{frame}")?;
        line.clear();
        stdout.read_line(&mut line)?;
        if !line.contains("\"result\"") {
            bail!("probe failed: {line}");
        }
    }
    let elapsed = t0.elapsed();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    Ok(elapsed)
}

/// The floor of a daemon's cold start with several agents: every wrapper probed at once, as
/// the daemon probes them; the time until the last one answered.
pub fn probes_at_once(wrappers: &[PathBuf]) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        let probes: Vec<_> = wrappers
            .iter()
            .map(|w| scope.spawn(move || probe_alone(w)))
            .collect();
        for probe in probes {
            probe
                .join()
                .map_err(|_| anyhow::anyhow!("a probe thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(t0.elapsed())
}

/// Opens a bound session on either path: returns the client and the session id to prompt.
pub fn open_session(path: &Path, via_proxy: bool) -> anyhow::Result<(Client, String)> {
    open_session_with(path, via_proxy.then_some("a"))
}

/// [`open_session`] bound to `agent` through the proxy (`None`: the raw pipe).
pub fn open_session_with(path: &Path, agent: Option<&str>) -> anyhow::Result<(Client, String)> {
    let mut client = Client::connect(path)?;
    client.initialize()?;
    let sid = client.new_session()?;
    let model = match agent {
        Some(agent) => format!("{agent}:m1"),
        None => "m1".into(),
    };
    client.pick_model(&sid, &model)?;
    Ok((client, sid))
}

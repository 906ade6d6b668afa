//! `acp top` in a real terminal: tmux runs the binary at 80×24 against two real daemons (and a
//! stale socket), the test reads the screen, types keys, and checks that every way out (`q`, a
//! SIGINT, a SIGTERM) leaves the terminal as it was: main screen, cursor shown, line mode on.
//!
//! tmux is required: without it the test fails, it never skips.

mod common;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{alive, Agents, Client, BIN};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// How long a screen may take to show what the test waits for.
const SCREEN_WAIT: Duration = Duration::from_secs(20);

/// A daemon run by the real binary; stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(agents: &Agents, socket: &Path, work: &Path) -> Daemon {
        let name = socket.file_stem().unwrap().to_string_lossy().into_owned();
        let log = std::fs::File::create(work.join(format!("{name}.log"))).unwrap();
        let child = Command::new(BIN)
            .env("TEROK_STATE_DIR", work.join(format!("{name}-state")))
            .args(["acp", "--runtime", "local"])
            .arg(agents.path())
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child,
            socket: socket.to_owned(),
        }
    }

    async fn wait_live(&self) {
        let socket = self.socket.clone();
        common::eventually(&format!("{} to accept", socket.display()), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        })
        .await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private tmux server (its socket in a temporary directory); killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path) -> Tmux {
        let version = Command::new("tmux").arg("-V").output().unwrap_or_else(|e| {
            panic!("the acp top test needs tmux, which cannot run ({e}): install it (apt-get install tmux)")
        });
        assert!(version.status.success(), "tmux -V failed: {version:?}");
        Tmux {
            socket: dir.join("tmux.sock"),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null", "-u"])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A detached 80×24 session named `name` running `command`.
    fn new_session(&self, name: &str, command: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "80",
            "-y",
            "24",
            command,
        ]);
    }

    fn screen(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    /// A pane's format variable, such as `#{alternate_on}`.
    fn pane(&self, target: &str, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", target, format])
            .trim()
            .to_owned()
    }

    fn keys(&self, target: &str, keys: &str) {
        self.run(&["send-keys", "-t", target, keys]);
    }

    /// Polls the screen until `pred` holds; fails with the last screen after a deadline.
    async fn wait_screen(&self, target: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen(target);
            if pred(&screen) {
                return screen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

/// A shell script that prints a line, runs `acp top` (recording its pid, which `exec` keeps),
/// then reports its exit status and the terminal's line mode and echo, prints a last line, and
/// stays.
fn top_script(work: &Path, runtime_dir: &Path, pidfile: &Path) -> PathBuf {
    let q = |p: &Path| terok_executor::shell::quote(&p.to_string_lossy());
    let script = work.join(format!(
        "run-top-{}.sh",
        pidfile.file_stem().unwrap().to_string_lossy()
    ));
    let body = format!(
        "#!/bin/sh\n\
         unset RUST_LOG TEROK_ACP_DEBUG\n\
         export TEROK_RUNTIME_DIR={rt}\n\
         echo 'before top'\n\
         sh -c 'echo $$ > \"$0\"; exec \"$@\"' {pid} {bin} acp top --interval 0.5\n\
         echo \"top exited with $?\"\n\
         stty -a | tr ' ;' '\\n\\n' | grep -x -e '-\\{{0,1\\}}icanon' -e '-\\{{0,1\\}}echo'\n\
         echo 'after top'\n\
         exec sleep 600\n",
        rt = q(runtime_dir),
        pid = q(pidfile),
        bin = terok_executor::shell::quote(BIN),
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn read_pid(pidfile: &Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}", pidfile.display()))
}

/// The session id as top shows it.
fn short(id: &str) -> String {
    id.trim_start_matches("terok-").chars().take(8).collect()
}

/// The screen line of the session `id`, split into words.
fn row<'a>(screen: &'a str, id: &str) -> Option<Vec<&'a str>> {
    let short = short(id);
    screen
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.get(1) == Some(&&short[..]))
}

/// The data rows (between the column titles and the first blank line), first word each.
fn containers_in_order(screen: &str) -> Vec<String> {
    screen
        .lines()
        .skip_while(|l| !l.starts_with("CONTAINER"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

/// Checks that top is gone and left the terminal as it found it.
async fn assert_restored(tmux: &Tmux, target: &str, pid: i32, code: u8) {
    let screen = tmux
        .wait_screen(target, "top to exit", |s| s.contains("after top"))
        .await;
    assert!(
        screen.contains(&format!("top exited with {code}")),
        "{screen}"
    );
    common::eventually("the top process to end", || !alive(pid)).await;
    assert_eq!(tmux.pane(target, "#{alternate_on}"), "0", "{screen}");
    assert_eq!(tmux.pane(target, "#{cursor_flag}"), "1", "{screen}");
    let lines: Vec<&str> = screen.lines().map(str::trim).collect();
    assert!(lines.contains(&"before top"), "{screen}");
    assert!(
        lines.contains(&"icanon") && lines.contains(&"echo"),
        "raw mode was left on:\n{screen}"
    );
    assert!(
        !screen.contains("CONTAINER") && !screen.contains("q quit"),
        "{screen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn top_shows_every_daemon_s_sessions_takes_keys_and_restores_the_terminal() {
    let work = tempfile::Builder::new()
        .prefix("terok-top-")
        .tempdir()
        .unwrap();
    let work = work.path();
    let tmux = Tmux::start(work);
    let runtime_dir = work.join("rt");
    let acp_dir = runtime_dir.join("acp");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&acp_dir)
        .unwrap();

    let alpha_agents = Agents::new(&[("coder", "--models m1,m2")]);
    let beta_agents = Agents::new(&[("writer", "--models fast,deep")]);
    let alpha = Daemon::start(&alpha_agents, &acp_dir.join("alpha.sock"), work);
    let beta = Daemon::start(&beta_agents, &acp_dir.join("beta.sock"), work);
    alpha.wait_live().await;
    beta.wait_live().await;
    // A daemon that died and left its socket: nobody accepts on it.
    drop(std::os::unix::net::UnixListener::bind(acp_dir.join("gamma.sock")).unwrap());

    // alpha: one bound session that reported its usage.
    let mut coder = Client::connect(&alpha.socket).await;
    coder.initialize().await;
    let (bound, _) = coder.new_session().await;
    coder.pick(&bound, "coder:m1").await;
    let (chunks, _) = coder.prompt(&bound, "usage 120 30 0.25").await;
    assert_eq!(chunks, ["usage reported"]);
    // beta: one session streaming 50 updates a second, one whose client left mid-turn.
    let mut writer = Client::connect(&beta.socket).await;
    writer.initialize().await;
    let (running, _) = writer.new_session().await;
    writer.pick(&running, "writer:deep").await;
    let prompt = |sid: &str, text: &str| json!({"sessionId": sid, "prompt": [{"type": "text", "text": text}]});
    writer
        .request("session/prompt", prompt(&running, "slow 3000 20"))
        .await;
    let mut leaver = Client::connect(&beta.socket).await;
    leaver.initialize().await;
    let (detached, _) = leaver.new_session().await;
    leaver.pick(&detached, "writer:fast").await;
    leaver
        .request("session/prompt", prompt(&detached, "hang"))
        .await;
    drop(leaver);

    let pidfile = work.join("top1.pid");
    let script = top_script(work, &runtime_dir, &pidfile);
    tmux.new_session("top1", &script.to_string_lossy());
    let screen = tmux
        .wait_screen(
            "top1",
            "both daemons' sessions, the running one measured",
            |s| {
                let measured = row(s, &running)
                    .and_then(|w| w.get(5)?.parse::<f64>().ok())
                    .is_some_and(|rate| rate > 0.0);
                measured
                    && row(s, &bound).is_some()
                    && row(s, &detached).is_some_and(|w| w.get(4) == Some(&"detached+run"))
            },
        )
        .await;
    let pid = read_pid(&pidfile);
    assert_eq!(tmux.pane("top1", "#{alternate_on}"), "1");
    assert_eq!(
        tmux.pane("top1", "#{cursor_flag}"),
        "0",
        "the cursor is hidden"
    );
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(lines.len(), 24, "{screen}");
    assert!(
        lines[0].starts_with("daemons 3 (1 down)  connections 2  sessions 3  agent procs ")
            && lines[0].ends_with("cost 0.2500 USD"),
        "{screen}"
    );
    assert!(lines[1].starts_with("CONTAINER▲ SESSION"), "{screen}");
    assert_eq!(
        row(&screen, &bound).unwrap(),
        [
            "alpha",
            &short(&bound),
            "coder",
            "m1",
            "bound",
            "0.0",
            "0.2500",
            "USD",
            "0%"
        ]
    );
    let streaming = row(&screen, &running).unwrap();
    assert_eq!(
        (streaming[..5].to_vec(), &streaming[6..]),
        (
            vec!["beta", &short(&running), "writer", "deep", "running"],
            &["-", "-"][..]
        ),
        "{screen}"
    );
    assert_eq!(
        row(&screen, &detached).unwrap()[..5],
        ["beta", &short(&detached), "writer", "fast", "detached+run"]
    );
    assert_eq!(containers_in_order(&screen), ["alpha", "beta", "beta"]);
    assert!(
        screen.contains("gamma  unreachable: cannot connect: Connection refused"),
        "{screen}"
    );
    assert!(
        lines[23].starts_with("q quit  s sort: container  f filter: all"),
        "{screen}"
    );

    // `s` moves the sort to the next column, and says so.
    tmux.keys("top1", "s");
    let screen = tmux
        .wait_screen("top1", "the sort by session", |s| {
            s.contains("s sort: session ") && s.contains("SESSION▲")
        })
        .await;
    assert!(!screen.contains("CONTAINER▲"), "{screen}");
    // Four more: by update rate, the streaming session first though its container sorts last.
    for _ in 0..4 {
        tmux.keys("top1", "s");
    }
    let screen = tmux
        .wait_screen("top1", "the sort by rate", |s| {
            s.contains("s sort: updates/s") && s.contains("UPD/S▼")
        })
        .await;
    assert_eq!(
        containers_in_order(&screen),
        ["beta", "alpha", "beta"],
        "{screen}"
    );
    assert_eq!(
        row(&screen, &running).unwrap()[1],
        screen
            .lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
    );

    // `f` shows one container at a time, then all again.
    tmux.keys("top1", "f");
    let screen = tmux
        .wait_screen("top1", "the filter on alpha", |s| {
            s.contains("f filter: alpha")
        })
        .await;
    assert_eq!(containers_in_order(&screen), ["alpha"], "{screen}");
    assert!(
        screen.starts_with("daemons 1  connections 1  sessions 1 "),
        "{screen}"
    );
    assert!(!screen.contains("gamma"), "{screen}");
    tmux.keys("top1", "f");
    let screen = tmux
        .wait_screen("top1", "the filter on beta", |s| {
            s.contains("f filter: beta")
        })
        .await;
    assert_eq!(containers_in_order(&screen), ["beta", "beta"], "{screen}");
    tmux.keys("top1", "f");
    let screen = tmux
        .wait_screen("top1", "the filter on gamma", |s| {
            s.contains("f filter: gamma")
        })
        .await;
    assert!(screen.contains("no sessions in gamma"), "{screen}");
    assert!(screen.contains("gamma  unreachable"), "{screen}");
    tmux.keys("top1", "f");
    let screen = tmux
        .wait_screen("top1", "the filter off", |s| s.contains("f filter: all"))
        .await;
    assert_eq!(containers_in_order(&screen).len(), 3, "{screen}");

    // `q` quits and leaves the terminal as it was.
    tmux.keys("top1", "q");
    assert_restored(&tmux, "top1", pid, 0).await;

    // A signal from outside does too, with the exit code a shell gives a killed program.
    for (n, signal) in [Signal::SIGINT, Signal::SIGTERM].into_iter().enumerate() {
        let target = format!("signal{n}");
        let pidfile = work.join(format!("{target}.pid"));
        let script = top_script(work, &runtime_dir, &pidfile);
        tmux.new_session(&target, &script.to_string_lossy());
        tmux.wait_screen(&target, "the view", |s| row(s, &bound).is_some())
            .await;
        let pid = read_pid(&pidfile);
        kill(Pid::from_raw(pid), signal).unwrap();
        assert_restored(&tmux, &target, pid, 128 + signal as u8).await;
    }

    // The clients go first; the daemons and the tmux server go with their guards.
    drop(coder);
    drop(writer);
}

#[test]
fn top_refuses_to_draw_without_a_terminal() {
    let out = Command::new(BIN)
        .args(["acp", "top"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("acp top draws on a terminal"), "{stderr}");
}

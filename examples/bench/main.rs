//! The proxy against its floor, in one run.
//!
//! `cargo run --release --example bench [-- --quick]` builds the release daemon, then drives the
//! same client code through (a) a raw Unix-socket pipe straight to the fixture agent and (b) the
//! `terok-executor acp --runtime local` daemon as a separate process, whose CPU time and memory
//! are read from `/proc`. It prints one markdown table: each figure, the floor, the proxy, their
//! ratio, the target and whether it is met. See `docs/benchmark.md`.

mod client;
mod peers;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use client::{Client, Streamed};
use peers::{open_session, open_session_with, probes_at_once, AgentDir, Daemon, RawPipe};
use report::{percentile, Report, Target};

/// The sizes of one run.
struct Plan {
    prompts: u64,
    /// Prompts of the 4 KiB stream: each is short (a few tenths of a second), so it takes
    /// more of them than of the 64-byte one for the ratio to settle on a noisy machine.
    large_prompts: u64,
    small: u64,
    large: u64,
    round_trips: usize,
    first_updates: usize,
    warm_news: usize,
    binds: usize,
    cancels: usize,
    idle: usize,
    parallel: usize,
    parallel_updates: u64,
    probe_delay_ms: u64,
    /// Turns of 10 updates in the transcript a reattach replays.
    transcript_turns: usize,
    reattaches: usize,
    detached: usize,
}

const FULL: Plan = Plan {
    prompts: 4,
    large_prompts: 12,
    small: 250_000,
    large: 40_000,
    round_trips: 5_000,
    first_updates: 500,
    warm_news: 500,
    binds: 10,
    cancels: 10,
    idle: 1000,
    parallel: 16,
    parallel_updates: 50_000,
    probe_delay_ms: 10,
    transcript_turns: 1000,
    reattaches: 10,
    detached: 64,
};

const QUICK: Plan = Plan {
    prompts: 2,
    large_prompts: 2,
    small: 50_000,
    large: 2_000,
    round_trips: 500,
    first_updates: 100,
    warm_news: 100,
    binds: 3,
    cancels: 3,
    idle: 200,
    parallel: 16,
    parallel_updates: 5_000,
    probe_delay_ms: 10,
    transcript_turns: 200,
    reattaches: 3,
    detached: 16,
};

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    // Only the streaming figures (for profiling the forwarding path).
    let streaming_only = std::env::args().any(|a| a == "--streaming");
    let plan = if quick { &QUICK } else { &FULL };
    let t0 = Instant::now();
    let bin = build_daemon()?;
    let root = tempfile::Builder::new().prefix("terok-bench-").tempdir()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = Report::new();

    let agents = AgentDir::new(root.path(), "one", &bin, &["a"], "")?;
    let raw = RawPipe::start(root.path().join("raw.sock"), agents.wrapper("a"))?;
    let daemon = Daemon::start(
        &bin,
        &agents,
        root.path().join("run/acp.sock"),
        &root.path().join("daemon.log"),
    )?;
    Client::connect_when_ready(&daemon.socket, Duration::from_secs(10))?;
    let paths = [
        (raw.socket.as_path(), false),
        (daemon.socket.as_path(), true),
    ];

    // Streaming: K prompts of N updates, 64 bytes then 4 KiB. The two paths take turns prompt
    // by prompt, so both see the same background load.
    let mut cpu_per_update = Duration::ZERO;
    for (size, n, prompts) in [
        (64usize, plan.small, plan.prompts),
        (4096, plan.large, plan.large_prompts),
    ] {
        let mut sessions = Vec::new();
        for (path, proxy) in &paths {
            let (mut client, sid) = open_session(path, *proxy)?;
            client.stream(&sid, 1000, size)?; // warm the pipes and allocators
            sessions.push((client, sid));
        }
        let mut totals = [Streamed::default(); 2];
        let mut secs = [0.0; 2];
        let mut cpu = Duration::ZERO;
        for _ in 0..prompts {
            for (i, (client, sid)) in sessions.iter_mut().enumerate() {
                let cpu0 = daemon.cpu()?;
                let t = Instant::now();
                let s = client.stream(sid, n, size)?;
                secs[i] += t.elapsed().as_secs_f64();
                if i == 1 {
                    cpu += daemon.cpu()? - cpu0;
                }
                totals[i].updates += s.updates;
                totals[i].bytes += s.bytes;
            }
        }
        let rates = [0, 1].map(|i| totals[i].updates as f64 / secs[i]);
        let mbs = [0, 1].map(|i| totals[i].bytes as f64 / secs[i] / 1e6);
        if size == 64 {
            cpu_per_update = cpu / totals[1].updates as u32;
        }
        let label = if size == 64 { "64 B" } else { "4 KiB" };
        report.rate(
            &format!("streaming {label}: updates/s ({prompts}×{n})"),
            rates,
            Target::AtLeastRatio(if size == 64 { 0.9 } else { 0.95 }),
        );
        report.info(
            &format!("streaming {label}: MB/s received"),
            format!("{:.0}", mbs[0]),
            format!("{:.0}", mbs[1]),
            format!("{:.2}", mbs[1] / mbs[0]),
        );
    }

    if streaming_only {
        cpu_row(&mut report, cpu_per_update);
        peak_row(&mut report, &daemon)?;
        println!(
            "\nstreaming only, {cores} cores, {:.0} s\n",
            t0.elapsed().as_secs_f64()
        );
        report.print();
        return Ok(());
    }

    // The same 64-byte stream through a daemon that writes a wire trace of every frame,
    // prompt by prompt against the untraced one.
    let trace_file = root.path().join("wire.ndjson");
    let traced = Daemon::start_with_env(
        &bin,
        &agents,
        root.path().join("run/traced.sock"),
        &root.path().join("traced.log"),
        &[("TEROK_ACP_TRACE", trace_file.as_path())],
    )?;
    Client::connect_when_ready(&traced.socket, Duration::from_secs(10))?;
    let mut pair = Vec::new();
    for socket in [&daemon.socket, &traced.socket] {
        let (mut client, sid) = open_session(socket, true)?;
        client.stream(&sid, 1000, 64)?;
        pair.push((client, sid));
    }
    let mut secs = [0.0; 2];
    let mut updates = [0u64; 2];
    for _ in 0..plan.prompts {
        for (i, (client, sid)) in pair.iter_mut().enumerate() {
            let t = Instant::now();
            updates[i] += client.stream(sid, plan.small, 64)?.updates;
            secs[i] += t.elapsed().as_secs_f64();
        }
    }
    drop(pair);
    // What the trace holds, from the daemon's own report: every frame each way, less the ones
    // dropped while its writer was behind.
    let counters = Client::connect(&traced.socket)?.call("_terok/status", serde_json::json!({}))?
        ["counters"]
        .clone();
    let frames: u64 = [
        "clientToDaemon",
        "daemonToClient",
        "agentToDaemon",
        "daemonToAgent",
    ]
    .iter()
    .filter_map(|hop| counters[hop]["frames"].as_u64())
    .sum();
    let dropped = counters["traceDropped"].as_u64().unwrap_or(0);
    let status = (frames.saturating_sub(dropped), dropped);
    drop(traced);
    let rates = [0, 1].map(|i| updates[i] as f64 / secs[i]);
    report.rate(
        "wire trace on, 64 B: updates/s (first column: the proxy without a trace)",
        rates,
        Target::AtLeastRatioOf(0.9, "untraced"),
    );
    report.info(
        "wire trace: frames written / dropped while the writer was behind",
        "–".into(),
        format!("{} / {}", status.0, status.1),
        "–".into(),
    );

    // Round trip of a cheap request on a bound session.
    let mut rtt = [Vec::new(), Vec::new()];
    let mut ttfu = [Vec::new(), Vec::new()];
    let mut warm = [Vec::new(), Vec::new()];
    let mut cancel = [Vec::new(), Vec::new()];
    for (i, (path, proxy)) in paths.iter().enumerate() {
        let (mut client, sid) = open_session(path, *proxy)?;
        for n in 0..plan.round_trips + 100 {
            let t = Instant::now();
            client.call(
                "_fixture/echo",
                serde_json::json!({"sessionId": sid, "n": n}),
            )?;
            if n >= 100 {
                rtt[i].push(t.elapsed());
            }
        }
        for _ in 0..plan.first_updates {
            ttfu[i].push(client.first_update(&sid)?);
        }
        for _ in 0..plan.warm_news {
            let t = Instant::now();
            client.new_session()?;
            warm[i].push(t.elapsed());
        }
        for _ in 0..plan.cancels {
            let (mut client, sid) = open_session(path, *proxy)?;
            cancel[i].push(client.cancel_under_load(&sid, 50_000)?);
        }
    }
    let p = |v: &mut Vec<Duration>, q| percentile(v, q);
    let (r50, r99) = (
        [p(&mut rtt[0], 0.5), p(&mut rtt[1], 0.5)],
        [p(&mut rtt[0], 0.99), p(&mut rtt[1], 0.99)],
    );
    report.latency(
        "round trip p50 (`_fixture/echo`)",
        r50,
        Target::WithinOfFloor(0.02),
    );
    report.latency("round trip p99", r99, Target::None);
    report.latency(
        "first update after a prompt, p50",
        [p(&mut ttfu[0], 0.5), p(&mut ttfu[1], 0.5)],
        Target::AtMost(0.5),
    );
    report.latency(
        "first update after a prompt, p99",
        [p(&mut ttfu[0], 0.99), p(&mut ttfu[1], 0.99)],
        Target::None,
    );
    report.latency(
        "warm `session/new`, p50 (floor: the agent's own)",
        [p(&mut warm[0], 0.5), p(&mut warm[1], 0.5)],
        Target::AtMost(0.1),
    );
    report.latency(
        "cancel → `cancelled` under a stream, p50",
        [p(&mut cancel[0], 0.5), p(&mut cancel[1], 0.5)],
        Target::AtMost(1.0),
    );
    report.latency(
        &format!(
            "cancel → `cancelled` under a stream, worst of {}",
            plan.cancels
        ),
        [p(&mut cancel[0], 1.0), p(&mut cancel[1], 1.0)],
        Target::None,
    );

    // Bind: model pick to answer on a fresh connection. The daemon's agent process is up and
    // holds a spare session opened in the background, so the bind takes it (warm). Floor: connect
    // + initialize + session/new + model pick straight to a fresh agent (cold).
    let mut bind = [Vec::new(), Vec::new()];
    for (i, (path, proxy)) in paths.iter().enumerate() {
        for _ in 0..plan.binds {
            if *proxy {
                let mut client = Client::connect(path)?;
                client.initialize()?;
                let sid = client.new_session()?;
                // The spare the previous bind took is replaced in the background.
                std::thread::sleep(Duration::from_millis(20));
                let t = Instant::now();
                client.pick_model(&sid, "a:m1")?;
                bind[i].push(t.elapsed());
            } else {
                let t = Instant::now();
                open_session(path, false)?;
                bind[i].push(t.elapsed());
            }
        }
    }
    report.latency(
        "bind (model pick → answer), p50; proxy: warm (spare session), floor: cold agent",
        [p(&mut bind[0], 0.5), p(&mut bind[1], 0.5)],
        Target::AtMost(1.0),
    );

    // Many connections: 16 streaming at once, then idle ones. The same workload on both paths:
    // each connection's session has an agent process of its own (through the proxy, one agent
    // of a 16-agent daemon each).
    let many: Vec<String> = (0..plan.parallel).map(|i| format!("p{i}")).collect();
    let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let many_dir = AgentDir::new(root.path(), "many", &bin, &many_refs, "")?;
    let many_raw = RawPipe::start(root.path().join("many-raw.sock"), many_dir.wrapper("p0"))?;
    let many_daemon = Daemon::start(
        &bin,
        &many_dir,
        root.path().join("run/many.sock"),
        &root.path().join("many.log"),
    )?;
    Client::connect_when_ready(&many_daemon.socket, Duration::from_secs(10))?;
    let aggregate = [
        parallel_stream(&many_raw.socket, None, plan.parallel, plan.parallel_updates)?,
        parallel_stream(
            &many_daemon.socket,
            Some(&many),
            plan.parallel,
            plan.parallel_updates,
        )?,
    ];
    drop(many_daemon);
    drop(many_raw);
    report.rate(
        &format!(
            "aggregate updates/s, {} connections × {} × 64 B, an agent process each",
            plan.parallel, plan.parallel_updates
        ),
        aggregate,
        Target::AtLeastRatio(0.8),
    );

    cpu_row(&mut report, cpu_per_update);
    peak_row(&mut report, &daemon)?;

    let before = daemon.memory("VmRSS")?;
    let mut idle = Vec::with_capacity(plan.idle);
    for _ in 0..plan.idle {
        let mut client = Client::connect(&daemon.socket)?;
        client.initialize()?;
        client.new_session()?;
        idle.push(client);
    }
    std::thread::sleep(Duration::from_millis(200));
    let with_idle = daemon.memory("VmRSS")? as f64 / (1 << 20) as f64;
    report.single(
        &format!(
            "proxy RSS with {} idle connections (before: {:.1} MiB)",
            plan.idle,
            before as f64 / (1 << 20) as f64
        ),
        format!("{with_idle:.1} MiB"),
        with_idle <= 32.0,
        "≤ 32 MiB",
    );
    drop(idle);

    // Reattach: a session whose transcript holds `transcript_turns` × 10 updates, its client
    // gone, loaded from a new connection (load → answer, the replay included).
    let (mut owner, sid) = open_session(&daemon.socket, true)?;
    for _ in 0..plan.transcript_turns {
        owner.stream(&sid, 10, 64)?;
    }
    drop(owner);
    std::thread::sleep(Duration::from_millis(100));
    let mut loads = Vec::new();
    let mut replayed = 0;
    for _ in 0..plan.reattaches {
        let mut client = Client::connect(&daemon.socket)?;
        client.initialize()?;
        let t = Instant::now();
        let id = client.send_request(
            "session/load",
            serde_json::json!({"sessionId": sid, "cwd": "/tmp", "mcpServers": []}),
        )?;
        let mut seen = Streamed::default();
        let answer = client.response(id, &mut seen)?;
        loads.push(t.elapsed());
        if answer.get("error").is_some() {
            bail!("session/load failed: {answer}");
        }
        replayed = seen.updates;
    }
    report.single(
        &format!(
            "reattach: `session/load` → answer, {} updates recorded ({replayed} replayed after merging), p50",
            plan.transcript_turns * 10
        ),
        format!("{:.2} ms", percentile(&mut loads, 0.5).as_secs_f64() * 1e3),
        percentile(&mut loads, 0.5) <= Duration::from_millis(100),
        "≤ 100 ms",
    );

    // Memory per detached session: sessions with a short exchange each, their client gone. On
    // a daemon of its own, warmed by one such session, so that what the earlier phases left
    // on the heap neither hides nor adds to the growth.
    let lean = Daemon::start(
        &bin,
        &agents,
        root.path().join("run/lean.sock"),
        &root.path().join("lean.log"),
    )?;
    Client::connect_when_ready(&lean.socket, Duration::from_secs(10))?;
    {
        let (mut warm, sid) = open_session(&lean.socket, true)?;
        warm.stream(&sid, 10, 64)?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = lean.memory("VmRSS")?;
    let mut owner = Client::connect(&lean.socket)?;
    owner.initialize()?;
    for _ in 0..plan.detached {
        let sid = owner.new_session()?;
        owner.pick_model(&sid, "a:m1")?;
        owner.stream(&sid, 10, 64)?;
    }
    drop(owner);
    std::thread::sleep(Duration::from_millis(300));
    let grown = lean.memory("VmRSS")?.saturating_sub(before) as f64 / 1024.0;
    let per = grown / plan.detached as f64;
    report.single(
        &format!(
            "proxy RSS per detached session ({} sessions, 10 updates each)",
            plan.detached
        ),
        format!("{per:.1} KiB"),
        per <= 64.0,
        "≤ 64 KiB",
    );
    drop(lean);
    drop(daemon);

    // Cold `session/new` on a fresh daemon with 1, 2 and 5 agents, against their probes at once.
    let delay = format!("--delay-ms {}", plan.probe_delay_ms);
    let names = ["a", "b", "c", "d", "e"];
    for count in [1usize, 2, 5] {
        let dir = AgentDir::new(
            root.path(),
            &format!("cold{count}"),
            &bin,
            &names[..count],
            &delay,
        )?;
        // The floor: the same probes, all at once, as the daemon runs them.
        let wrappers: Vec<_> = names[..count].iter().map(|n| dir.wrapper(n)).collect();
        let mut floors: Vec<Duration> = (0..3)
            .map(|_| probes_at_once(&wrappers))
            .collect::<anyhow::Result<_>>()?;
        let floor = percentile(&mut floors, 0.5);
        let mut colds = Vec::new();
        for run in 0..3 {
            let daemon = Daemon::start(
                &bin,
                &dir,
                root.path().join(format!("run/cold{count}-{run}.sock")),
                &root.path().join(format!("cold{count}-{run}.log")),
            )?;
            let mut client = Client::connect_when_ready(&daemon.socket, Duration::from_secs(10))?;
            // `initialize` waits for the probes (its capabilities are their merge), so the cold
            // figure is the handshake as a whole: from the first accept to the session.
            let t = Instant::now();
            client.initialize()?;
            client.new_session()?;
            colds.push(t.elapsed());
        }
        report.latency(
            &format!(
                "cold `initialize` + `session/new`, {count} agent(s), median of 3 (floor: the {count} probe(s) at once)"
            ),
            [floor, percentile(&mut colds, 0.5)],
            Target::WithinOfFloor(2.0),
        );
    }

    println!(
        "\n{} run on {cores} cores, {:.0} s in all\n",
        if quick { "quick" } else { "full" },
        t0.elapsed().as_secs_f64()
    );
    report.print();
    if report.failed() > 0 {
        eprintln!("{} target(s) not met", report.failed());
    }
    Ok(())
}

/// Updates per second over `connections` sessions streaming at once.
/// Streams `n` updates on each of `connections` sessions at once; through the proxy the
/// `i`-th binds to `agents[i]`, through the raw pipe (`None`) each has its own agent anyway.
fn parallel_stream(
    path: &Path,
    agents: Option<&[String]>,
    connections: usize,
    n: u64,
) -> anyhow::Result<f64> {
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut threads = Vec::new();
    for i in 0..connections {
        let (mut client, sid) = open_session_with(path, agents.map(|a| a[i].as_str()))?;
        let barrier = barrier.clone();
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            client.stream(&sid, n, 64)
        }));
    }
    barrier.wait();
    let t = Instant::now();
    let mut updates = 0;
    for thread in threads {
        updates += thread
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))??
            .updates;
    }
    Ok(updates as f64 / t.elapsed().as_secs_f64())
}

/// Builds the release daemon next to this example and returns its path; `TEROK_BENCH_DAEMON`
/// names a binary to measure instead (to compare two builds in the same minutes of a noisy
/// machine).
fn build_daemon() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TEROK_BENCH_DAEMON") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("TEROK_BENCH_DAEMON: {} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let exe = std::env::current_exe()?;
    // <target>/<profile>/examples/bench: the daemon is built with the benchmark's own profile.
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    let target = profile
        .parent()
        .context("cannot locate the target directory")?;
    let name = match profile.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => bail!("cannot tell the benchmark's profile"),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--profile",
            name,
            "--quiet",
            "--bin",
            "terok-executor",
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin = profile.join("terok-executor");
    if !bin.exists() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

/// The daemon's peak RSS so far, with what the sessions the load left keep: their transcripts,
/// from the daemon's own report (sessions belong to the daemon, so they stay after their clients
/// leave).
fn peak_row(report: &mut Report, daemon: &Daemon) -> anyhow::Result<()> {
    let hwm = daemon.memory("VmHWM")? as f64 / (1 << 20) as f64;
    let status = Client::connect(&daemon.socket)?.call("_terok/status", serde_json::json!({}))?;
    let sessions = status["sessions"].as_array().cloned().unwrap_or_default();
    let transcripts: u64 = sessions
        .iter()
        .filter_map(|s| s["transcriptBytes"].as_u64())
        .sum();
    report.single(
        &format!(
            "proxy peak RSS under load ({} sessions kept, their transcripts {:.1} MiB)",
            sessions.len(),
            transcripts as f64 / (1 << 20) as f64
        ),
        format!("{hwm:.1} MiB"),
        hwm <= 16.0,
        "≤ 16 MiB",
    );
    Ok(())
}

/// The daemon's CPU time per forwarded 64-byte update, against its target.
fn cpu_row(report: &mut Report, per_update: Duration) {
    let cpu_us = per_update.as_secs_f64() * 1e6;
    report.single(
        "proxy CPU per update (64 B stream)",
        format!("{cpu_us:.3} µs"),
        cpu_us <= 0.3,
        "≤ 0.3 µs",
    );
}

//! Load and leaks: many short connections, then many streaming ones at once through one shared
//! agent process. Afterwards (short detached and idle times) no agent process is left, the open
//! file descriptors are back to where they were, memory is back near its baseline, and every
//! streamed frame arrived, in order, before its prompt's answer.

mod common;

use std::time::Duration;

use common::{alive, eventually, Agents, Proxy};
use serde_json::json;
use terok_executor::acp::server::{OnDisconnect, ProxyConfig};

/// Detached sessions and idle agents go quickly, so a test can see everything given back.
fn short_lived() -> ProxyConfig {
    ProxyConfig {
        detached_ttl: Duration::from_millis(500),
        agent_idle: Duration::from_millis(500),
        ..Default::default()
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cycles_and_a_hundred_streams_leak_nothing() {
    let agents = Agents::new(&[("claude", "--models m1 --ignore-stdin-eof")]);
    let proxy = Proxy::start_with(&agents, short_lived()).await;
    // Warm the probe cache, let the probed agent process go idle, take the baseline.
    {
        let mut client = proxy.connect().await;
        client.initialize().await;
        client.new_session().await;
    }
    eventually("the warm-up agents to end", || {
        let pids = agents.pids("claude");
        pids.len() == 1 && pids.iter().all(|p| !alive(*p))
    })
    .await;
    let tasks = proxy.server.tracker.len();
    let (fds, rss) = (open_fds(), rss_kib());

    // 1000 connect / initialize / session/new / disconnect cycles, eight at a time.
    let mut lanes = Vec::new();
    for _ in 0..8 {
        let socket = proxy.socket.clone();
        lanes.push(tokio::spawn(async move {
            for _ in 0..125 {
                let mut client = common::Client::connect(&socket).await;
                client.initialize().await;
                let (sid, _) = client.new_session().await;
                assert!(sid.starts_with("terok-"));
            }
        }));
    }
    for lane in lanes {
        lane.await.unwrap();
    }

    // 100 clients streaming at once, through the one agent process the daemon owns.
    const UPDATES: usize = 300;
    let mut streams = Vec::new();
    for _ in 0..100 {
        let socket = proxy.socket.clone();
        streams.push(tokio::spawn(async move {
            let mut client = common::Client::connect(&socket).await;
            let (sid, _) = client.new_session().await;
            client.pick(&sid, "claude:m1").await;
            let id = client.request("session/prompt", json!({"sessionId": sid, "prompt": [{"type": "text", "text": format!("stream {UPDATES} 64")}]})).await;
            let mut seen = 0;
            loop {
                let v = client.next().await;
                if v["id"] == id {
                    assert_eq!(v["result"]["stopReason"], "end_turn");
                    break;
                }
                if v["params"]["update"]["sessionUpdate"] == "agent_message_chunk" {
                    assert_eq!(v["params"]["sessionId"], sid.as_str());
                    seen += 1;
                }
            }
            seen
        }));
    }
    for stream in streams {
        assert_eq!(
            stream.await.unwrap(),
            UPDATES,
            "every update arrives before its answer"
        );
    }

    // One agent process served them all, and everything is ended and given back.
    let pids = agents.pids("claude");
    assert_eq!(
        pids.len(),
        2,
        "the idled probed process, then one shared agent"
    );
    eventually("every agent process to end", || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
    eventually("the connection tasks to end", || {
        proxy.server.tracker.len() <= tasks
    })
    .await;
    eventually("the file descriptors to come back", || {
        open_fds() <= fds + 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grown = rss_kib().saturating_sub(rss);
    eprintln!(
        "fds {fds} -> {}, rss {rss} KiB -> {} KiB",
        open_fds(),
        rss_kib()
    );
    assert!(grown < 48 * 1024, "memory grew by {grown} KiB");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_stream_cancels_its_turn_and_blocks_nobody() {
    let agents = Agents::new(&[("claude", "--models m1 --ignore-stdin-eof")]);
    let config = ProxyConfig {
        on_disconnect: OnDisconnect::Cancel,
        ..short_lived()
    };
    let proxy = Proxy::start_with(&agents, config).await;
    let mut leaving = proxy.connect().await;
    let (sid, _) = leaving.new_session().await;
    leaving.pick(&sid, "claude:m1").await;
    leaving
        .request(
            "session/prompt",
            json!({"sessionId": sid, "prompt": [{"type": "text", "text": "stream 100000000 64"}]}),
        )
        .await;
    leaving
        .wait_for("the stream to start", |v| {
            v["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
        })
        .await;
    let pids = agents.pids("claude");
    drop(leaving);
    // Meanwhile another client is served normally.
    let mut staying = proxy.connect().await;
    let (other, _) = staying.new_session().await;
    let (chunks, _) = staying.prompt(&other, "still here").await;
    assert_eq!(chunks, ["claude/m1: still here"]);
    eventually("the vanished client's turn to be cancelled", || {
        agents
            .received_method("claude", "session/cancel")
            .iter()
            .any(|v| v["params"]["sessionId"].is_string())
    })
    .await;
    drop(staying);
    eventually("the agent to end once idle", || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
    proxy.stop().await;
}

//! `acp status`: a running daemon's own report, asked over its socket by the real command,
//! against a daemon in known states; refused to another user, never forwarded to an agent.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{eventually, Agents, Proxy, BIN};
use serde_json::json;
use terok_executor::acp::server::ProxyConfig;
use terok_executor::acp::status::{SessionState, Status};

/// `terok-executor acp status --socket S --json`, run as `uid` when given.
fn status_command(socket: &std::path::Path, uid: Option<u32>) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(["acp", "status", "--json", "--socket"])
        .arg(socket);
    if let Some(uid) = uid {
        command.uid(uid).gid(uid);
    }
    command.output().expect("the status command runs")
}

async fn status_of(socket: &std::path::Path) -> Status {
    let socket = socket.to_owned();
    let out = tokio::task::spawn_blocking(move || status_command(&socket, None))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "acp status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("acp status --json prints a status")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_connections_sessions_agents_probes_counters_and_usage() {
    let agents = Agents::new(&[("a", "--models m1,m2"), ("locked", "--auth-required")]);
    let nobody = 65534;
    let config = ProxyConfig {
        allowed_uids: vec![nobody],
        ..ProxyConfig::default()
    };
    let proxy = Proxy::start_with(&agents, config).await;

    // Two editors connected; the first ran a turn that reported usage and streamed.
    let mut first = proxy.connect().await;
    first.initialize().await;
    let (sid1, _) = first.new_session().await;
    first.pick(&sid1, "a:m1").await;
    let (chunks, answer) = first.prompt(&sid1, "usage 120 30 0.25").await;
    assert_eq!(chunks, ["usage reported"], "{answer}");
    first.prompt(&sid1, "stream 50 10").await;
    let mut second = proxy.connect().await;
    second.initialize().await;
    let (sid2, _) = second.new_session().await;
    // A third left in the middle of a turn: its session is detached, the turn running.
    let mut third = proxy.connect().await;
    third.initialize().await;
    let (sid3, _) = third.new_session().await;
    third.pick(&sid3, "a:m2").await;
    third
        .request(
            "session/prompt",
            json!({"sessionId": sid3, "prompt": [{"type": "text", "text": "hang"}]}),
        )
        .await;
    drop(third);

    let socket = proxy.socket.clone();
    let mut status = status_of(&socket).await;
    for _ in 0..50 {
        let detached = status
            .sessions
            .iter()
            .any(|s| s.id == sid3 && s.holder.is_none());
        let locked_settled = status
            .probes
            .iter()
            .any(|p| p.agent == "locked" && p.state != "probing");
        if detached && locked_settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = status_of(&socket).await;
    }

    assert_eq!(status.daemon.pid, std::process::id());
    assert!(status.daemon.rss_bytes.unwrap_or(0) > 0);
    // The two editors still connected; not the one that left, nor the one asking.
    assert_eq!(status.connections.len(), 2, "{status:#?}");
    assert!(status
        .connections
        .iter()
        .all(|c| c.client.as_deref() == Some("test 1") && c.uid == 0 && c.pid.is_some()));
    assert_eq!(status.connections[0].sessions, [&sid1[..]]);
    assert_eq!(status.connections[1].sessions, [&sid2[..]]);

    let session = |id: &str| {
        status
            .sessions
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("session {id} in {status:#?}"))
    };
    let s1 = session(&sid1);
    assert_eq!(
        (s1.state, s1.agent.as_deref(), &s1.model[..]),
        (SessionState::Bound, Some("a"), "a:m1")
    );
    // The usage update, the chunk after it, then 50 streamed chunks.
    assert_eq!(s1.updates, 52);
    assert!(s1.transcript_bytes > 0);
    assert_eq!(
        (s1.usage.context_used, s1.usage.context_size),
        (Some(150), Some(200_000))
    );
    assert_eq!(
        (
            s1.usage.input_tokens,
            s1.usage.output_tokens,
            s1.usage.total_tokens
        ),
        (120, 30, 150)
    );
    let cost = s1.usage.cost.as_ref().expect("a cost");
    assert_eq!((cost.amount, &cost.currency[..]), (0.25, "USD"));
    let s2 = session(&sid2);
    assert_eq!(
        (s2.state, s2.agent.as_deref()),
        (SessionState::Unbound, None)
    );
    let s3 = session(&sid3);
    assert_eq!(
        (s3.state, s3.turn_running, s3.holder),
        (SessionState::Detached, true, None)
    );

    // One process of agent `a` serves both bound sessions; its pid is the wrapper's.
    let a: Vec<_> = status.agents.iter().filter(|p| p.agent == "a").collect();
    assert_eq!(a.len(), 1, "{:#?}", status.agents);
    assert!(a[0].ready);
    let pids = agents.pids("a");
    assert!(
        pids.contains(&(a[0].pid.expect("a pid") as i32)),
        "{pids:?}"
    );
    assert!(a[0].rss_bytes.unwrap_or(0) > 0);
    let mut served = a[0].sessions.clone();
    served.sort();
    let mut bound = vec![sid1.clone(), sid3.clone()];
    bound.sort();
    assert_eq!(served, bound);

    let probe = |agent: &str| status.probes.iter().find(|p| p.agent == agent).unwrap();
    assert_eq!(probe("a").state, "ready");
    assert_eq!(probe("a").models, Some(2));
    let locked = probe("locked");
    assert_eq!(locked.state, "needs_authentication", "{locked:?}");
    assert!(locked
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("uthentication"));
    assert!(locked.retry_in_secs.is_some());

    let c = &status.counters;
    // 11 from the editors, then the status requests.
    assert!(c.client_to_daemon.frames >= 12, "{c:?}");
    assert!(c.daemon_to_client.frames >= 52 + 10, "{c:?}");
    assert!(c.agent_to_daemon.frames >= 52, "{c:?}");
    assert!(c.daemon_to_agent.frames >= 5, "{c:?}");
    assert!(c.daemon_to_client.bytes > c.daemon_to_client.frames * 20);
    assert_eq!((c.client_errors, c.agent_errors), (0, 0));

    assert_eq!(status.usage.len(), 1, "{:#?}", status.usage);
    assert_eq!(status.usage[0].agent, "a");
    assert_eq!(status.usage[0].sessions, 2);
    assert_eq!(status.usage[0].total_tokens, 150);
    assert_eq!(status.usage[0].cost.len(), 1);

    // The method is the daemon's own: no agent ever saw it.
    for agent in ["a", "locked"] {
        assert!(agents.received_method(agent, "_terok/status").is_empty());
    }
    // The text form carries the same facts.
    let text = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["acp", "status", "--socket"])
                .arg(&socket)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    for needle in [
        "connections: 2",
        &format!("{sid3}  a:m2  detached, turn running"),
        "context 150/200000, 150 tokens, 0.2500 USD",
        "locked       needs_authentication",
        "a            2 session(s), 150 tokens (120 in, 30 out), 0.2500 USD",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }

    // A bad line from a client is counted.
    first.send_raw("not json").await;
    first
        .wait_for("the parse error", |v| v["error"]["code"] == -32700)
        .await;
    let status = status_of(&socket).await;
    assert_eq!(status.counters.client_errors, 1);

    // Another user the daemon lets talk to agents still does not see every session.
    let dir = agents.path();
    for path in [dir.to_owned(), dir.join("run"), proxy.socket.clone()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = tokio::task::spawn_blocking(move || status_command(&socket, Some(nobody)))
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("answered only to the daemon's own user"),
        "{stderr}"
    );
    eventually("the refusal leaves nothing at the agents", || {
        agents.received_method("a", "_terok/status").is_empty()
    })
    .await;
    proxy.stop().await;
}

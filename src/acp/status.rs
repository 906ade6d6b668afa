//! What a running daemon reports about itself: `terok-executor acp status` and `acp top`.
//!
//! The daemon answers the reserved method [`STATUS_METHOD`] itself, only to a peer of its own
//! user, and never forwards it to an agent. The report is a snapshot: connections, sessions
//! (with what they cost, from the agents' `usage_update` notifications and prompt answers),
//! agent processes, the probe cache and the daemon's counters. This module holds the report's
//! shape, shared by the daemon that builds it and the commands that show it, and its plain-text
//! rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The reserved method a daemon answers with its [`Status`].
pub const STATUS_METHOD: &str = "_terok/status";

/// One daemon's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub daemon: Daemon,
    pub connections: Vec<Connection>,
    pub sessions: Vec<Session>,
    pub agents: Vec<AgentProcess>,
    pub probes: Vec<Probe>,
    pub counters: Counters,
    /// Usage summed over each agent's sessions.
    pub usage: Vec<AgentUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Daemon {
    pub pid: u32,
    pub version: String,
    /// Where the agents live (`container NAME`, or the local directory).
    pub runtime: String,
    pub uptime_secs: f64,
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: u64,
    pub pid: Option<i32>,
    pub uid: u32,
    pub age_secs: f64,
    /// `clientInfo` name and version from the client's `initialize`.
    pub client: Option<String>,
    /// The sessions this connection holds.
    pub sessions: Vec<String>,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// No agent yet: the proxy answered `session/new` and shows the picker.
    #[default]
    Unbound,
    /// A model was picked and the agent is opening its session.
    Binding,
    /// An agent holds the session; no turn is running.
    Bound,
    /// A turn is running, with a client attached.
    Running,
    /// No client holds the session (a turn may still run: see `turnRunning`).
    Detached,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Unbound => "unbound",
            SessionState::Binding => "binding",
            SessionState::Bound => "bound",
            SessionState::Running => "running",
            SessionState::Detached => "detached",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    /// The agent bound (or binding), if any.
    pub agent: Option<String>,
    /// The current pick, `agent:model`.
    pub model: String,
    pub state: SessionState,
    pub turn_running: bool,
    /// The connection that holds it; `None` while detached.
    pub holder: Option<u64>,
    pub age_secs: f64,
    /// Since the last frame of this session either way.
    pub idle_secs: f64,
    /// `session/update` notifications relayed (or recorded while detached).
    pub updates: u64,
    /// Bytes the transcript holds.
    pub transcript_bytes: u64,
    /// Whether the transcript waits on disk (a detached session with no turn running), out of
    /// the daemon's memory until someone needs it. False where its file could not be written
    /// (the daemon then holds it in memory).
    #[serde(default)]
    pub transcript_on_disk: bool,
    pub usage: Usage,
}

/// What a session has cost so far, as its agent reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Tokens in the context now (`usage_update.used`).
    pub context_used: Option<u64>,
    /// The context window (`usage_update.size`).
    pub context_size: Option<u64>,
    /// The session's cumulative cost (`usage_update.cost`).
    pub cost: Option<Cost>,
    /// Token counts summed over the turns' answers (`session/prompt` result `usage`).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub amount: f64,
    pub currency: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentProcess {
    pub agent: String,
    /// The process the daemon started (for a container, the `podman exec` client).
    pub pid: Option<u32>,
    pub uptime_secs: f64,
    pub rss_bytes: Option<u64>,
    /// Whether it has answered `initialize`.
    pub ready: bool,
    /// The sessions it serves.
    pub sessions: Vec<String>,
}

/// The probe cache's state for one agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub agent: String,
    /// `ready`, `probing`, `needs_authentication` or `failed`.
    pub state: String,
    /// Models offered, when ready.
    pub models: Option<usize>,
    /// Why it is not ready.
    pub reason: Option<String>,
    /// Seconds until the next probe, while backing off.
    pub retry_in_secs: Option<f64>,
}

/// Frames and bytes one way over one hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub frames: u64,
    pub bytes: u64,
}

impl Flow {
    pub fn add(&mut self, bytes: usize) {
        self.frames += 1;
        self.bytes += bytes as u64;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub client_to_daemon: Flow,
    pub daemon_to_client: Flow,
    pub agent_to_daemon: Flow,
    pub daemon_to_agent: Flow,
    /// Lines from clients that were not JSON-RPC (each answered with an error).
    pub client_errors: u64,
    /// Lines from agents that were dropped as malformed or over the size limit.
    pub agent_errors: u64,
    /// Agent processes that ended while serving.
    pub agent_exits: u64,
    /// Trace lines the trace writer could not keep up with.
    pub trace_dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentUsage {
    pub agent: String,
    pub sessions: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// Cost per currency.
    pub cost: Vec<Cost>,
}

/// Totals `sessions`' usage per agent, agents in name order.
pub fn usage_per_agent(sessions: &[Session]) -> Vec<AgentUsage> {
    let mut totals: Vec<AgentUsage> = Vec::new();
    for session in sessions {
        let Some(agent) = &session.agent else {
            continue;
        };
        let at = match totals.iter().position(|t| &t.agent == agent) {
            Some(at) => at,
            None => {
                totals.push(AgentUsage {
                    agent: agent.clone(),
                    ..AgentUsage::default()
                });
                totals.len() - 1
            }
        };
        let total = &mut totals[at];
        let usage = &session.usage;
        total.sessions += 1;
        total.input_tokens += usage.input_tokens;
        total.output_tokens += usage.output_tokens;
        total.total_tokens += usage.total_tokens;
        if let Some(cost) = &usage.cost {
            add_cost(&mut total.cost, cost);
        }
    }
    totals.sort_by(|a, b| a.agent.cmp(&b.agent));
    totals
}

/// Adds `cost` to the sum of its currency in `sums`, a currency's first cost opening its sum.
pub fn add_cost(sums: &mut Vec<Cost>, cost: &Cost) {
    match sums.iter_mut().find(|c| c.currency == cost.currency) {
        Some(sum) => sum.amount += cost.amount,
        None => sums.push(cost.clone()),
    }
}

/// A duration in seconds as people read it: `42s`, `3m05s`, `2h07m`.
pub fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Bytes as people read them: `512 B`, `12.3 KiB`, `48.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
    }
}

/// A cost as `0.2500 USD`.
pub fn human_cost(cost: &Cost) -> String {
    format!("{:.4} {}", cost.amount, cost.currency)
}

/// The report as `acp status` prints it.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let d = &status.daemon;
    let _ = writeln!(
        out,
        "daemon pid {} (terok-executor {}), {}, up {}, RSS {}",
        d.pid,
        d.version,
        d.runtime,
        human_secs(d.uptime_secs),
        d.rss_bytes.map_or("?".into(), human_bytes)
    );
    let _ = writeln!(out, "\nconnections: {}", status.connections.len());
    for c in &status.connections {
        let _ = writeln!(
            out,
            "  #{:<4} pid {:<8} uid {:<6} {:>7}  {}  sessions: {}",
            c.id,
            c.pid.map_or("?".into(), |p| p.to_string()),
            c.uid,
            human_secs(c.age_secs),
            c.client.as_deref().unwrap_or("(no initialize)"),
            list_or_none(&c.sessions)
        );
    }
    let _ = writeln!(out, "\nsessions: {}", status.sessions.len());
    for s in &status.sessions {
        let state = match (s.state, s.turn_running) {
            (SessionState::Detached, true) => "detached, turn running".to_string(),
            (state, _) => state.as_str().to_string(),
        };
        let _ = writeln!(
            out,
            "  {}  {}  {}  age {}, idle {}, {} updates, transcript {}{}{}",
            s.id,
            s.model,
            state,
            human_secs(s.age_secs),
            human_secs(s.idle_secs),
            s.updates,
            human_bytes(s.transcript_bytes),
            if s.transcript_on_disk {
                " (on disk)"
            } else {
                ""
            },
            usage_suffix(&s.usage)
        );
    }
    let _ = writeln!(out, "\nagent processes: {}", status.agents.len());
    for a in &status.agents {
        let _ = writeln!(
            out,
            "  {:<12} pid {:<8} up {:>7}  RSS {:>10}  {}  sessions: {}",
            a.agent,
            a.pid.map_or("?".into(), |p| p.to_string()),
            human_secs(a.uptime_secs),
            a.rss_bytes.map_or("?".into(), human_bytes),
            if a.ready { "ready" } else { "starting" },
            list_or_none(&a.sessions)
        );
    }
    let _ = writeln!(out, "\nprobes:");
    for p in &status.probes {
        let mut line = format!("  {:<12} {}", p.agent, p.state);
        if let Some(models) = p.models {
            let _ = write!(line, ", {models} model(s)");
        }
        if let Some(retry) = p.retry_in_secs {
            let _ = write!(line, ", next probe in {}", human_secs(retry));
        }
        if let Some(reason) = &p.reason {
            let _ = write!(line, ": {reason}");
        }
        let _ = writeln!(out, "{line}");
    }
    let c = &status.counters;
    let _ = writeln!(out, "\nframes (bytes):");
    for (label, flow) in [
        ("client -> daemon", c.client_to_daemon),
        ("daemon -> agent ", c.daemon_to_agent),
        ("agent  -> daemon", c.agent_to_daemon),
        ("daemon -> client", c.daemon_to_client),
    ] {
        let _ = writeln!(
            out,
            "  {label}  {:>10} ({})",
            flow.frames,
            human_bytes(flow.bytes)
        );
    }
    let _ = writeln!(
        out,
        "  errors: {} from clients, {} from agents; agent exits: {}; trace lines dropped: {}",
        c.client_errors, c.agent_errors, c.agent_exits, c.trace_dropped
    );
    if !status.usage.is_empty() {
        let _ = writeln!(out, "\nusage per agent:");
        for u in &status.usage {
            let cost: Vec<String> = u.cost.iter().map(human_cost).collect();
            let _ = writeln!(
                out,
                "  {:<12} {} session(s), {} tokens ({} in, {} out){}",
                u.agent,
                u.sessions,
                u.total_tokens,
                u.input_tokens,
                u.output_tokens,
                if cost.is_empty() {
                    String::new()
                } else {
                    format!(", {}", cost.join(" + "))
                }
            );
        }
    }
    out
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn usage_suffix(usage: &Usage) -> String {
    let mut parts = Vec::new();
    if let (Some(used), Some(size)) = (usage.context_used, usage.context_size) {
        parts.push(format!("context {used}/{size}"));
    }
    if usage.total_tokens > 0 {
        parts.push(format!("{} tokens", usage.total_tokens));
    }
    if let Some(cost) = &usage.cost {
        parts.push(human_cost(cost));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(", {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(agent: &str, cost: Option<(f64, &str)>, tokens: u64) -> Session {
        Session {
            agent: Some(agent.into()),
            usage: Usage {
                cost: cost.map(|(amount, currency)| Cost {
                    amount,
                    currency: currency.into(),
                }),
                total_tokens: tokens,
                input_tokens: tokens,
                ..Usage::default()
            },
            ..Session::default()
        }
    }

    #[test]
    fn usage_is_totalled_per_agent_and_currency() {
        let sessions = [
            session("b", Some((0.5, "USD")), 10),
            session("a", None, 5),
            session("b", Some((0.25, "USD")), 1),
            session("b", Some((2.0, "EUR")), 0),
            Session::default(),
        ];
        let totals = usage_per_agent(&sessions);
        assert_eq!(
            totals.iter().map(|t| &t.agent[..]).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(totals[1].sessions, 3);
        assert_eq!(totals[1].total_tokens, 11);
        assert_eq!(
            totals[1].cost,
            [
                Cost {
                    amount: 0.75,
                    currency: "USD".into()
                },
                Cost {
                    amount: 2.0,
                    currency: "EUR".into()
                }
            ]
        );
        assert!(totals[0].cost.is_empty());
    }

    #[test]
    fn durations_and_sizes_read_naturally() {
        assert_eq!(human_secs(42.9), "42s");
        assert_eq!(human_secs(185.0), "3m05s");
        assert_eq!(human_secs(7620.0), "2h07m");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_595), "12.3 KiB");
        assert_eq!(human_bytes(48 << 20), "48.0 MiB");
    }

    #[test]
    fn the_report_renders_every_section() {
        let mut status = Status::default();
        status.sessions.push(Session {
            id: "terok-1".into(),
            model: "a:m1".into(),
            state: SessionState::Detached,
            turn_running: true,
            ..session("a", Some((0.25, "USD")), 150)
        });
        status.usage = usage_per_agent(&status.sessions);
        let text = render(&status);
        for needle in [
            "connections: 0",
            "terok-1  a:m1  detached, turn running",
            "150 tokens, 0.2500 USD",
            "usage per agent:",
            "a            1 session(s), 150 tokens",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }
}

//! A daemon's configuration: the `TEROK_ACP_*` environment, read once at start-up.

use std::path::PathBuf;
use std::time::Duration;

use crate::acp::lines::DEFAULT_MAX_FRAME;
use crate::acp::probe;

/// How much frame content the debug log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDebug {
    Off,
    /// Direction, method, id and size of every frame.
    Summary,
    /// Whole frames, prompt text and file contents included.
    Full,
}

impl FrameDebug {
    /// Reads `TEROK_ACP_DEBUG`: unset, empty or `0` is off, `full` shows whole frames, anything
    /// else shows summaries.
    pub fn from_env() -> FrameDebug {
        match std::env::var("TEROK_ACP_DEBUG")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("0") => FrameDebug::Off,
            Some(v) if v.eq_ignore_ascii_case("full") => FrameDebug::Full,
            Some(_) => FrameDebug::Summary,
        }
    }
}

/// How long `session/new` waits for an agent's first probe by default.
pub const DEFAULT_PROBE_WAIT: Duration = Duration::from_secs(10);
/// How long `initialize` waits for agents' first probes by default.
pub const DEFAULT_INITIALIZE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How long a probe may run before its agent counts as hung (`TEROK_ACP_PROBE_TIMEOUT_SECS`).
    pub probe_timeout: Duration,
    /// How long `session/new` waits for an agent's first probe, counted from the probe's start
    /// (`TEROK_ACP_PROBE_WAIT_SECS`). With no agent ready yet it waits on for the first one.
    pub probe_wait: Duration,
    /// How long `initialize` waits for agents' first probes (`TEROK_ACP_INITIALIZE_WAIT_SECS`).
    pub initialize_wait: Duration,
    /// Deadline of one bind: spawn, `initialize`, `session/new` and the model pick.
    pub bind_timeout: Duration,
    /// Longest accepted line.
    pub max_frame: usize,
    pub debug: FrameDebug,
    /// Where to keep the `.bound` marker, if anywhere.
    pub bound_file: Option<PathBuf>,
    /// Where probe results are persisted per image, if anywhere.
    pub cache_dir: Option<PathBuf>,
    /// Host ↔ container pairs beyond the session's own `cwd` ↔ workspace.
    pub extra_paths: Vec<(PathBuf, PathBuf)>,
    /// Whether agents in a container may run commands in the editor's terminal (on the host).
    pub host_terminal: bool,
    /// Where to write a wire trace of every frame (`TEROK_ACP_TRACE`, `--trace`).
    pub trace: Option<crate::acp::trace::TraceConfig>,
    /// Users besides the daemon's own that may connect (`TEROK_ACP_ALLOW_UIDS`).
    pub allowed_uids: Vec<u32>,
    /// Where the proxy's session map is kept, if anywhere.
    pub sessions_file: Option<PathBuf>,
    /// What happens to a running turn when its client goes away.
    pub on_disconnect: OnDisconnect,
    /// How long a detached session is kept (`TEROK_ACP_DETACHED_TTL_SECS`).
    pub detached_ttl: Duration,
    /// How many detached sessions are kept in memory at most (`TEROK_ACP_MAX_DETACHED`).
    pub max_detached: usize,
    /// How long an agent process that serves no session stays up (`TEROK_ACP_AGENT_IDLE_SECS`).
    pub agent_idle: Duration,
    /// The byte budget of one session's transcript (`TEROK_ACP_TRANSCRIPT_BYTES`).
    pub transcript_bytes: usize,
    /// Whether a switch of agents hands the conversation over (`TEROK_ACP_SWITCH_CONTEXT`).
    pub switch_context: bool,
    /// Whether agents keep spare sessions and start before their first bind (`TEROK_ACP_SPARE`).
    pub spares: bool,
    /// The host's vault, for logins from the editor (see [`super::vault_login`]).
    pub vault: Option<crate::acp::vault_login::VaultHandle>,
    /// What the sessions opened at each agent get in their `_meta` (see
    /// [`super::session_defaults`]).
    pub session_defaults: crate::acp::session_defaults::SessionDefaults,
}

/// What happens to a running turn when its client goes away (`TEROK_ACP_ON_DISCONNECT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisconnect {
    /// The turn runs on, for a client that reattaches.
    Keep,
    /// The agent is told to stop the turn.
    Cancel,
}

impl ProxyConfig {
    /// Whether a peer with `uid` may connect: the daemon's own user, or one explicitly allowed.
    pub fn allows_uid(&self, uid: u32) -> bool {
        uid == nix::unistd::geteuid().as_raw() || self.allowed_uids.contains(&uid)
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            probe_timeout: probe::DEFAULT_PROBE_TIMEOUT,
            probe_wait: DEFAULT_PROBE_WAIT,
            initialize_wait: DEFAULT_INITIALIZE_WAIT,
            bind_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
            debug: FrameDebug::Off,
            bound_file: None,
            cache_dir: None,
            extra_paths: Vec::new(),
            host_terminal: false,
            allowed_uids: Vec::new(),
            trace: None,
            sessions_file: None,
            on_disconnect: OnDisconnect::Keep,
            detached_ttl: Duration::from_secs(1800),
            max_detached: 64,
            agent_idle: Duration::from_secs(600),
            transcript_bytes: crate::acp::transcript::DEFAULT_TRANSCRIPT_BYTES,
            switch_context: true,
            spares: true,
            vault: None,
            session_defaults: Default::default(),
        }
    }
}

impl ProxyConfig {
    /// Defaults with the environment's overrides applied.
    pub fn from_env() -> ProxyConfig {
        let mut config = ProxyConfig {
            probe_timeout: probe::probe_timeout_from_env(),
            debug: FrameDebug::from_env(),
            ..Default::default()
        };
        if let Some(secs) = env_secs("TEROK_ACP_PROBE_WAIT_SECS") {
            config.probe_wait = secs;
        }
        if let Some(secs) = env_secs("TEROK_ACP_INITIALIZE_WAIT_SECS") {
            config.initialize_wait = secs;
        }
        if let Some(secs) = env_secs("TEROK_ACP_BIND_TIMEOUT_SECS") {
            config.bind_timeout = secs;
        }
        if let Ok(pairs) = std::env::var("TEROK_ACP_PATH_MAP") {
            config.extra_paths = pairs
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(h, c)| (PathBuf::from(h.trim()), PathBuf::from(c.trim())))
                .collect();
        }
        if let Ok(uids) = std::env::var("TEROK_ACP_ALLOW_UIDS") {
            config.allowed_uids = uids
                .split(',')
                .filter_map(|u| u.trim().parse().ok())
                .collect();
        }
        config.host_terminal = matches!(
            std::env::var("TEROK_ACP_HOST_TERMINAL").as_deref(),
            Ok("1") | Ok("true")
        );
        if let Some(max) = env_usize("TEROK_ACP_MAX_FRAME_BYTES") {
            config.max_frame = max.max(1024);
        }
        match std::env::var("TEROK_ACP_ON_DISCONNECT")
            .as_deref()
            .map(str::trim)
        {
            Ok("cancel") => config.on_disconnect = OnDisconnect::Cancel,
            Ok("keep") | Ok("") | Err(_) => {}
            Ok(other) => tracing::warn!(
                "TEROK_ACP_ON_DISCONNECT={other:?} is not keep or cancel; keeping turns"
            ),
        }
        if let Some(secs) = env_secs("TEROK_ACP_DETACHED_TTL_SECS") {
            config.detached_ttl = secs;
        }
        if let Some(secs) = env_secs("TEROK_ACP_AGENT_IDLE_SECS") {
            config.agent_idle = secs;
        }
        if let Some(max) = env_usize("TEROK_ACP_MAX_DETACHED") {
            config.max_detached = max;
        }
        if let Some(bytes) = env_usize("TEROK_ACP_TRANSCRIPT_BYTES") {
            config.transcript_bytes = bytes.max(1024);
        }
        config.switch_context = !env_off("TEROK_ACP_SWITCH_CONTEXT");
        config.trace = crate::acp::trace::config_from_env();
        config.spares = !env_off("TEROK_ACP_SPARE");
        config
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
}

/// Whether a switch variable says off (`off`, `0`, `false`, `no`).
fn env_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

fn env_secs(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        // `from_secs_f64` panics on values too large for a `Duration` (e.g. `1e30`).
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

//! Probing an agent: what it can do and which models it offers.
//!
//! A probe starts the agent's wrapper, sends `initialize` and `session/new` (in the runtime's
//! workspace) and reads the model selector from the answer. Its limit is long: it is there for
//! agents that hang, not for slow ones, since how long a request waits for a probe is the
//! cache's business and a probe that outlives the wait still lands in the cache. Inside a
//! daemon the live process is then handed to the hub, which keeps it as the agent's process
//! (and the probe's session as its spare); elsewhere the probe closes its session and ends the
//! process itself, since real agents do not exit when their stdin closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::frame::{Frame, FrameKind};
use super::lines::{Line, LineReader, DEFAULT_MAX_FRAME};
use super::message::{self, AUTH_REQUIRED};
use super::models::ModelMenu;
use super::runtime::{AgentName, AgentProcess, Runtime};

/// How long a probe may run before its agent counts as hung and its process is ended,
/// overridable with `TEROK_ACP_PROBE_TIMEOUT_SECS`.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a successful probe learned.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentProbe {
    pub agent: AgentName,
    /// The agent's `initialize` result, verbatim.
    pub initialize: Value,
    pub menu: ModelMenu,
    /// The legacy `modes` block of its `session/new` answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes: Option<Value>,
}

impl AgentProbe {
    /// What an agent's `initialize` and `session/new` answers say.
    pub fn from_answers(agent: AgentName, initialize: Value, session: &Value) -> AgentProbe {
        AgentProbe {
            agent,
            initialize,
            menu: ModelMenu::from_session(session),
            modes: super::modes::legacy_modes(session),
        }
    }

    /// The agent's display title from `agentInfo`, else its name.
    pub fn title(&self) -> String {
        let info = self.initialize.get("agentInfo");
        info.and_then(|i| i.get("title").or_else(|| i.get("name")))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.agent.to_string())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot start: {0}")]
    Spawn(String),
    #[error("no answer within {0:?}{suffix}", suffix = stderr_suffix(.1))]
    Timeout(Duration, String),
    /// The probe is still running; its answer reaches the cache when it comes.
    #[error("still starting ({:.1} s so far)", .0.as_secs_f64())]
    Starting(Duration),
    #[error("authentication required: {message}")]
    AuthRequired {
        message: String,
        auth_methods: Value,
    },
    #[error("{method} failed: {message} ({code})")]
    Rejected {
        method: &'static str,
        code: i64,
        message: String,
    },
    #[error("exited during the handshake{suffix}", suffix = stderr_suffix(.0))]
    Exited(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

/// The probe limit from the environment, or the default.
pub fn probe_timeout_from_env() -> Duration {
    std::env::var("TEROK_ACP_PROBE_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        // `from_secs_f64` panics on values too large for a `Duration` (e.g. `1e30`).
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_PROBE_TIMEOUT)
}

/// A probed agent process, handed on alive after its handshake: it is initialized, and the
/// session the probe opened is still open.
pub struct WarmAgent {
    pub agent: AgentName,
    pub stdin: super::runtime::AgentStdin,
    pub stdout: LineReader<super::runtime::AgentStdout>,
    pub stderr: super::runtime::StderrTail,
    pub control: super::runtime::ProcessControl,
    /// The `initialize` params it got, and its answer.
    pub init_params: Value,
    pub init_result: Value,
    /// The probe's session: its id, the `session/new` params and the answer.
    pub session_id: String,
    pub session_params: Value,
    pub session_result: Value,
    /// Frames the agent sent during the handshake besides its answers (a command list, say).
    pub early: Vec<Frame>,
}

/// Where a probe hands its process once the handshake succeeded; without one, the probe
/// closes its session and ends the process.
pub type Adopter = tokio::sync::mpsc::UnboundedSender<WarmAgent>;

/// How a probe opens its agent: the `initialize` params, and the `_meta` defaults its
/// `session/new` gets (see [`super::session_defaults`]).
#[derive(Clone, Copy)]
pub struct Start<'a> {
    pub init: &'a Value,
    pub session_meta: Option<&'a serde_json::Map<String, Value>>,
    /// The daemon's wire trace, which records the probe's frames too.
    pub trace: &'a super::trace::Tracer,
}

/// Where a probe's frames are traced: the daemon's trace, under the agent's name.
#[derive(Clone, Copy)]
struct Tap<'a> {
    trace: &'a super::trace::Tracer,
    agent: &'a str,
}

/// Probes one agent under `timeout`, opened as `start` says. When `adopter` yields a sender
/// after the handshake, the live process goes there instead of ending.
pub async fn probe(
    runtime: &dyn Runtime,
    agent: &AgentName,
    timeout: Duration,
    start: Start<'_>,
    adopter: impl FnOnce() -> Option<Adopter>,
) -> Result<Arc<AgentProbe>, ProbeError> {
    let init = start.init;
    let tap = Tap {
        trace: start.trace,
        agent: agent.as_str(),
    };
    let process = runtime
        .spawn(agent)
        .await
        .map_err(|e| ProbeError::Spawn(e.to_string()))?;
    let AgentProcess {
        mut stdin,
        stdout,
        stderr,
        mut control,
    } = process;
    let mut reader = LineReader::new(stdout, DEFAULT_MAX_FRAME);
    let cwd = runtime.workspace();
    let mut early = Vec::new();
    let outcome = tokio::time::timeout(
        timeout,
        handshake(&mut stdin, &mut reader, &mut early, start, &cwd, tap),
    )
    .await;
    let (initialize, session_id, session_result) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(ProbeError::Exited(_))) => {
            control.terminate();
            // Give the stderr reader a moment to catch the last words.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(ProbeError::Exited(stderr.text()));
        }
        Ok(Err(e)) => {
            control.terminate();
            return Err(e);
        }
        Err(_) => {
            control.terminate();
            return Err(ProbeError::Timeout(timeout, stderr.text()));
        }
    };
    let probe = AgentProbe::from_answers(agent.clone(), initialize, &session_result);
    if let Some(adopter) = adopter() {
        let warm = WarmAgent {
            agent: agent.clone(),
            stdin,
            stdout: reader,
            stderr,
            control,
            init_params: init.clone(),
            init_result: probe.initialize.clone(),
            session_id,
            session_params: json!({"cwd": cwd, "mcpServers": []}),
            session_result,
            early,
        };
        if let Err(tokio::sync::mpsc::error::SendError(mut warm)) = adopter.send(warm) {
            forget_session(
                &mut warm.stdin,
                &mut warm.stdout,
                &probe,
                &warm.session_id,
                tap,
            )
            .await;
            warm.control.terminate();
        }
        return Ok(Arc::new(probe));
    }
    let within = tokio::time::timeout(
        timeout,
        forget_session(&mut stdin, &mut reader, &probe, &session_id, tap),
    );
    let _ = within.await;
    control.terminate();
    Ok(Arc::new(probe))
}

/// `initialize` and `session/new`; returns the `initialize` answer, the session id and the
/// `session/new` answer.
async fn handshake(
    stdin: &mut super::runtime::AgentStdin,
    reader: &mut LineReader<super::runtime::AgentStdout>,
    early: &mut Vec<Frame>,
    start: Start<'_>,
    cwd: &str,
    tap: Tap<'_>,
) -> Result<(Value, String, Value), ProbeError> {
    let initialize = request(stdin, reader, early, 0, "initialize", start.init, tap).await?;
    let mut params = json!({"cwd": cwd, "mcpServers": []});
    if let Some(meta) = start.session_meta {
        super::session_defaults::apply(&mut params, meta);
    }
    let session = request(stdin, reader, early, 1, "session/new", &params, tap).await;
    let session = match session {
        Err(ProbeError::Rejected {
            code: AUTH_REQUIRED,
            message,
            ..
        }) => {
            let auth_methods = initialize.get("authMethods").cloned().unwrap_or(json!([]));
            return Err(ProbeError::AuthRequired {
                message,
                auth_methods,
            });
        }
        other => other?,
    };
    let Some(session_id) = session.get("sessionId").and_then(Value::as_str) else {
        return Err(ProbeError::Protocol(
            "session/new answered without a sessionId".into(),
        ));
    };
    let session_id = session_id.to_owned();
    Ok((initialize, session_id, session))
}

/// The probe's session is of no use to anyone: closed where the agent supports that, and
/// deleted where it can, so it never shows up in the agent's history or `session/list`.
async fn forget_session(
    stdin: &mut super::runtime::AgentStdin,
    reader: &mut LineReader<super::runtime::AgentStdout>,
    probe: &AgentProbe,
    session_id: &str,
    tap: Tap<'_>,
) {
    let params = json!({"sessionId": session_id});
    let mut ignored = Vec::new();
    for (id, method, capability) in [
        (2, "session/close", "close"),
        (3, "session/delete", "delete"),
    ] {
        let supported = probe
            .initialize
            .pointer(&format!(
                "/agentCapabilities/sessionCapabilities/{capability}"
            ))
            .is_some_and(|c| !c.is_null());
        if supported {
            if let Err(e) = request(stdin, reader, &mut ignored, id, method, &params, tap).await {
                tracing::debug!(agent = %probe.agent, "{method} of the probe session failed: {e}");
            }
        }
    }
}

async fn request<R: tokio::io::AsyncRead + Unpin>(
    stdin: &mut super::runtime::AgentStdin,
    reader: &mut LineReader<R>,
    early: &mut Vec<Frame>,
    id: u64,
    method: &'static str,
    params: &Value,
    tap: Tap<'_>,
) -> Result<Value, ProbeError> {
    let mut out = BytesMut::new();
    message::write_request(&mut out, message::numeric_id(id).as_bytes(), method, params);
    let out = out.freeze();
    tap.trace
        .probe_frame(super::trace::Hop::DaemonToAgent, tap.agent, out.clone());
    let io = |e: std::io::Error| ProbeError::Exited(e.to_string());
    stdin.write_all(&out).await.map_err(io)?;
    stdin.flush().await.map_err(io)?;
    loop {
        let line = match reader.next_line().await.map_err(io)? {
            None => return Err(ProbeError::Exited(String::new())),
            Some(Line::Overlong(n)) => {
                tracing::warn!(method, "probe skipped an overlong line of {n} bytes");
                continue;
            }
            Some(Line::Frame(line)) => line,
        };
        tap.trace
            .probe_frame(super::trace::Hop::AgentToDaemon, tap.agent, line.clone());
        let Ok(frame) = Frame::parse(line) else {
            tracing::debug!(method, "probe skipped a malformed line");
            continue;
        };
        if frame.kind() == FrameKind::Notification && early.len() < 64 {
            early.push(frame);
            continue;
        }
        if frame.kind() != FrameKind::Response || frame.id_u64() != Some(id) {
            continue;
        }
        let value = frame
            .to_value()
            .map_err(|e| ProbeError::Protocol(e.to_string()))?;
        if let Some(error) = value.get("error") {
            return Err(ProbeError::Rejected {
                method,
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        return Ok(value.get("result").cloned().unwrap_or(Value::Null));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_timeout_reads_the_environment() {
        // One test owns the variable, so parallel tests cannot see it change.
        std::env::set_var("TEROK_ACP_PROBE_TIMEOUT_SECS", "0.25");
        assert_eq!(probe_timeout_from_env(), Duration::from_millis(250));
        for bad in ["", "soon", "-1", "0", "NaN"] {
            std::env::set_var("TEROK_ACP_PROBE_TIMEOUT_SECS", bad);
            assert_eq!(probe_timeout_from_env(), DEFAULT_PROBE_TIMEOUT, "{bad:?}");
        }
        std::env::remove_var("TEROK_ACP_PROBE_TIMEOUT_SECS");
        assert_eq!(probe_timeout_from_env(), DEFAULT_PROBE_TIMEOUT);
    }
}

//! Probing an agent: what it can do and which models it offers.
//!
//! A probe starts the agent's wrapper, sends `initialize` and `session/new` (in the runtime's
//! workspace), reads the model selector from the answer and ends the process; real agents do
//! not exit when their stdin closes, so the probe always terminates them itself. The whole
//! exchange runs under one deadline.

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

/// Default deadline for one probe, overridable with `TEROK_ACP_PROBE_TIMEOUT_SECS`.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a successful probe learned.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentProbe {
    pub agent: AgentName,
    /// The agent's `initialize` result, verbatim.
    pub initialize: Value,
    pub menu: ModelMenu,
}

impl AgentProbe {
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

/// The probe deadline from the environment, or the default.
pub fn probe_timeout_from_env() -> Duration {
    std::env::var("TEROK_ACP_PROBE_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        // `from_secs_f64` panics on values too large for a `Duration` (e.g. `1e30`).
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_PROBE_TIMEOUT)
}

/// The `initialize` params the probe sends: no client capabilities, so the agent cannot call
/// back into an editor that is not there.
pub fn probe_initialize_params() -> Value {
    json!({
        "protocolVersion": 1,
        "clientCapabilities": {"fs": {"readTextFile": false, "writeTextFile": false}, "terminal": false},
        "clientInfo": {"name": "terok-executor-probe", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// Probes one agent under `timeout`.
pub async fn probe(
    runtime: &dyn Runtime,
    agent: &AgentName,
    timeout: Duration,
) -> Result<Arc<AgentProbe>, ProbeError> {
    let process = runtime
        .spawn(agent)
        .await
        .map_err(|e| ProbeError::Spawn(e.to_string()))?;
    let stderr = process.stderr.clone();
    let mut process = process;
    let outcome = tokio::time::timeout(
        timeout,
        handshake(&mut process, agent, &runtime.workspace()),
    )
    .await;
    process.control.terminate();
    match outcome {
        Ok(Ok(probe)) => Ok(Arc::new(probe)),
        Ok(Err(ProbeError::Exited(_))) => {
            // Give the stderr reader a moment to catch the last words.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(ProbeError::Exited(stderr.text()))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProbeError::Timeout(timeout, stderr.text())),
    }
}

async fn handshake(
    process: &mut AgentProcess,
    agent: &AgentName,
    cwd: &str,
) -> Result<AgentProbe, ProbeError> {
    let mut reader = LineReader::new(&mut process.stdout, DEFAULT_MAX_FRAME);
    let initialize = request(
        &mut process.stdin,
        &mut reader,
        0,
        "initialize",
        &probe_initialize_params(),
    )
    .await?;
    let session = request(
        &mut process.stdin,
        &mut reader,
        1,
        "session/new",
        &json!({"cwd": cwd, "mcpServers": []}),
    )
    .await;
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
    // The probe's session is of no use to anyone: close it where the agent supports that, so
    // it does not linger in the agent's session history.
    let closable = initialize
        .pointer("/agentCapabilities/sessionCapabilities/close")
        .is_some_and(|c| !c.is_null());
    let deletable = initialize
        .pointer("/agentCapabilities/sessionCapabilities/delete")
        .is_some_and(|c| !c.is_null());
    let params = json!({"sessionId": session_id});
    if closable {
        if let Err(e) = request(&mut process.stdin, &mut reader, 2, "session/close", &params).await
        {
            tracing::debug!(agent = %agent, "closing the probe session failed: {e}");
        }
    }
    // Closed sessions stay in an agent's history; where it can, the probe's is deleted too, so
    // it never shows up in `session/list`.
    if deletable {
        if let Err(e) = request(
            &mut process.stdin,
            &mut reader,
            3,
            "session/delete",
            &params,
        )
        .await
        {
            tracing::debug!(agent = %agent, "deleting the probe session failed: {e}");
        }
    }
    Ok(AgentProbe {
        agent: agent.clone(),
        menu: ModelMenu::from_session(&session),
        initialize,
    })
}

async fn request<R: tokio::io::AsyncRead + Unpin>(
    stdin: &mut super::runtime::AgentStdin,
    reader: &mut LineReader<R>,
    id: u64,
    method: &'static str,
    params: &Value,
) -> Result<Value, ProbeError> {
    let mut out = BytesMut::new();
    message::write_request(&mut out, message::numeric_id(id).as_bytes(), method, params);
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
        let Ok(frame) = Frame::parse(line) else {
            tracing::debug!(method, "probe skipped a malformed line");
            continue;
        };
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

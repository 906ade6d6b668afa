//! Asking a running daemon about itself, over its own socket: what `acp status` and `acp top`
//! show.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::status::{Status, STATUS_METHOD};

/// How long a daemon may take to answer `acp status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a daemon gave no report. The messages leave the socket out: the caller names the daemon.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("it refused: {0}")]
    Refused(String),
    #[error("it closed the connection without answering")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("its report did not parse: {0}")]
    BadReport(serde_json::Error),
}

/// The [`Status`] of the daemon listening on `socket`.
pub async fn query(socket: &Path) -> anyhow::Result<Status> {
    query_within(socket, STATUS_TIMEOUT)
        .await
        .with_context(|| format!("no status from the daemon on {}", socket.display()))
}

/// The [`Status`] of the daemon listening on `socket`, if it answers within `timeout`.
pub async fn query_within(socket: &Path, timeout: Duration) -> Result<Status, QueryError> {
    tokio::time::timeout(timeout, ask(socket))
        .await
        .map_err(|_| QueryError::Timeout(timeout))?
}

async fn ask(socket: &Path) -> Result<Status, QueryError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(QueryError::Connect)?;
    let (read, mut write) = stream.into_split();
    let request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": STATUS_METHOD});
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let Ok(mut answer) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if answer.get("id") != Some(&serde_json::json!(1)) {
            continue;
        }
        if let Some(error) = answer.get("error") {
            let message = error
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown error");
            return Err(QueryError::Refused(message.to_owned()));
        }
        let result = answer
            .get_mut("result")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        return serde_json::from_value(result).map_err(QueryError::BadReport);
    }
    Err(QueryError::Closed)
}

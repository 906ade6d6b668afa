//! Asking a running daemon about itself, over its own socket: what `acp status` and `acp top`
//! show.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::status::{Status, STATUS_METHOD};

/// How long a daemon may take to answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The [`Status`] of the daemon listening on `socket`.
pub async fn query(socket: &Path) -> anyhow::Result<Status> {
    tokio::time::timeout(STATUS_TIMEOUT, ask(socket))
        .await
        .with_context(|| {
            format!(
                "no status from {} within {STATUS_TIMEOUT:?}",
                socket.display()
            )
        })?
}

async fn ask(socket: &Path) -> anyhow::Result<Status> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    let request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": STATUS_METHOD});
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
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
            anyhow::bail!("the daemon on {} refused: {message}", socket.display());
        }
        let result = answer
            .get_mut("result")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        return serde_json::from_value(result).context("the daemon's status did not parse");
    }
    anyhow::bail!(
        "the daemon on {} closed without answering",
        socket.display()
    )
}

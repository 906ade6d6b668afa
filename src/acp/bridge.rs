//! `acp connect`'s pump: the editor's stdio to a daemon's socket and back.
//!
//! Bytes are copied as they come, in both directions, with no parsing. End of stdin
//! half-closes the socket, which ends the connection for the daemon (its sessions detach, and
//! a turn still running finishes for the next editor that loads it); end of the socket ends
//! the bridge. Errors go to stderr only: an editor would take anything on stdout for a frame.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: String,
        source: std::io::Error,
    },
    #[error("the ACP daemon connection was reset (the daemon exited mid-session); see {log}")]
    Reset { log: String },
    #[error("bridge i/o failed: {0}")]
    Io(std::io::Error),
}

/// Pumps `input` → socket and socket → `output` until the daemon closes the connection.
pub async fn pump<I, O>(
    socket: &Path,
    log: &Path,
    mut input: I,
    mut output: O,
) -> Result<(), BridgeError>
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin,
{
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| BridgeError::Connect {
            socket: socket.display().to_string(),
            source,
        })?;
    let (mut from_daemon, mut to_daemon) = stream.into_split();
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match input.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_daemon.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        // Half-close: the daemon sees end of input and still answers.
        let _ = to_daemon.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        match from_daemon.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = output.write_all(&buf[..n]).await {
                    break Err(BridgeError::Io(e));
                }
                if let Err(e) = output.flush().await {
                    break Err(BridgeError::Io(e));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                break Err(BridgeError::Reset {
                    log: log.display().to_string(),
                })
            }
            Err(e) => break Err(BridgeError::Io(e)),
        }
    };
    upstream.abort();
    outcome
}

//! Client connections: views onto the daemon's sessions that come and go.
//!
//! Each connection has a reader task ([`serve_connection`]) that splits the socket into lines
//! and hands them to the hub, and a writer ([`Outbox`]) the hub fills. A connection ends the
//! moment its socket reads EOF or a read or write fails. Its sessions then detach: an idle one
//! is kept, a turn in progress keeps running (or is cancelled, per `TEROK_ACP_ON_DISCONNECT`),
//! and questions the agent asks meanwhile wait for the next client that attaches. A detached
//! session lives for `TEROK_ACP_DETACHED_TTL_SECS`; then its turn is cancelled, its agent
//! session closed, and its transcript stays on disk, where `session/load` still finds it.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::net::UnixStream;
use tracing::Instrument;

use super::session::SessionState;
use super::{cancel_agent_request, ConnId, Event, Hub, HubHandle};
use crate::acp::frame::{Frame, Span};
use crate::acp::lines::LineReader;
use crate::acp::outbox::{Gauge, Outbox};
use crate::acp::picker::Catalog;
use crate::acp::runtime::AgentName;
use crate::acp::server::{OnDisconnect, Server};

/// What the hub keeps of one client connection.
pub(super) struct Conn {
    outbox: Outbox,
    /// Frames for the client, sent as one batch when the current event is handled.
    pub buf: BytesMut,
    /// What goes before `buf` in this batch: long agent frames as slices of where they were
    /// read (sent with `writev`, not copied), and the parts of `buf` written before them.
    pieces: Vec<Bytes>,
    /// The frames `pieces` hold.
    piece_frames: u64,
    /// The client's own `initialize` params, replayed to the agents it binds.
    pub client_init: Option<Value>,
    /// The latest catalog this connection has seen (for auth methods and live updates).
    pub catalog: Option<Arc<Catalog>>,
    /// Requests waiting for the catalog.
    pub deferred: usize,
    /// The agent this client last logged in to (where its `logout` goes).
    pub login: Option<AgentName>,
    /// Who is on the other end of the socket.
    pub peer: Peer,
    pub since: Instant,
}

/// A client's credentials, from the socket.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// An agent frame at least this long goes to its client as slices of where it was read.
const SLICED_FRAME_BYTES: usize = 2048;

/// What one flush sent to a client.
pub(super) struct Sent {
    pub frames: u64,
    pub bytes: usize,
    /// The whole batch, when it was asked for (for the wire trace).
    pub batch: Option<Bytes>,
}

impl Conn {
    /// Writes an agent's frame with the session id at `span` replaced by `literal`. A long
    /// frame is not copied: its slices are sent as they are.
    pub fn write_with_session(&mut self, frame: &Frame, span: Span, literal: &Bytes) {
        let raw = frame.raw();
        if raw.len() < SLICED_FRAME_BYTES {
            frame.write_spliced(&mut [(span, &literal[..])], &mut self.buf);
            return;
        }
        self.seal_buf();
        self.pieces.extend([
            raw.slice(..span.start),
            literal.clone(),
            raw.slice(span.end..),
            Bytes::from_static(b"\n"),
        ]);
        self.piece_frames += 1;
    }

    /// Moves what `buf` holds to the pieces, in order.
    fn seal_buf(&mut self) {
        if !self.buf.is_empty() {
            let part = self.buf.split().freeze();
            self.piece_frames += memchr::memchr_iter(b'\n', &part).count() as u64;
            self.pieces.push(part);
        }
    }

    /// Sends the frames written during this event: how many, how many bytes, and with
    /// `whole`, the batch itself.
    pub fn flush(&mut self, whole: bool) -> Option<Sent> {
        if self.pieces.is_empty() {
            if self.buf.is_empty() {
                return None;
            }
            let batch = self.buf.split().freeze();
            self.outbox.send(batch.clone());
            return Some(Sent {
                frames: memchr::memchr_iter(b'\n', &batch).count() as u64,
                bytes: batch.len(),
                batch: whole.then_some(batch),
            });
        }
        self.seal_buf();
        let pieces = std::mem::take(&mut self.pieces);
        let frames = std::mem::take(&mut self.piece_frames);
        let bytes = pieces.iter().map(Bytes::len).sum();
        let batch = whole.then(|| {
            let mut batch = BytesMut::with_capacity(bytes);
            for piece in &pieces {
                batch.extend_from_slice(piece);
            }
            batch.freeze()
        });
        self.outbox.send_all(pieces);
        Some(Sent {
            frames,
            bytes,
            batch,
        })
    }

    pub fn gauge(&self) -> Gauge {
        self.outbox.gauge()
    }
}

/// Serves one client until it leaves or the daemon shuts down.
pub async fn serve_connection(server: Arc<Server>, hub: HubHandle, stream: UnixStream) {
    let id = server.next_connection_id();
    // Only the daemon's own user (and users explicitly allowed) may talk to its agents.
    let peer = match stream.peer_cred() {
        Ok(cred) if server.config.allows_uid(cred.uid()) => Peer {
            uid: cred.uid(),
            pid: cred.pid(),
        },
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "refused a connection from another user"
            );
            return;
        }
        Err(e) => {
            tracing::warn!("refused a connection whose peer cannot be identified: {e}");
            return;
        }
    };
    let span = tracing::info_span!("conn", id);
    read_loop(server, hub, stream, id, peer)
        .instrument(span)
        .await
}

async fn read_loop(
    server: Arc<Server>,
    hub: HubHandle,
    stream: UnixStream,
    conn: ConnId,
    peer: Peer,
) {
    tracing::debug!("client connected");
    let (read, write) = stream.into_split();
    let outbox = Outbox::spawn_socket(write, &server.tracker, format!("client {conn}"));
    let gauge = outbox.gauge();
    if hub
        .events
        .send(Event::Connected { conn, outbox, peer })
        .await
        .is_err()
    {
        return;
    }
    let mut reader = LineReader::new(read, server.config.max_frame);
    loop {
        let more = tokio::select! {
            _ = server.shutdown.cancelled() => return,
            _ = gauge.closed() => {
                tracing::info!("writing to the client failed; detaching");
                false
            }
            read = reader.fill() => match read {
                Ok(more) => more,
                Err(e) => {
                    tracing::info!("reading from the client failed ({e}); detaching");
                    false
                }
            },
        };
        let mut lines = Vec::new();
        while let Some(line) = reader.next_buffered() {
            lines.push(line);
        }
        if !more {
            lines.extend(reader.take_tail());
        }
        if !lines.is_empty()
            && hub
                .events
                .send(Event::ClientLines { conn, lines })
                .await
                .is_err()
        {
            return;
        }
        if !more {
            break;
        }
    }
    tracing::debug!("connection ended");
    let _ = hub.events.send(Event::Disconnected { conn }).await;
}

impl Hub {
    pub(super) fn on_connected(&mut self, conn: ConnId, outbox: Outbox, peer: Peer) {
        self.conns.insert(
            conn,
            Conn {
                outbox,
                // Grown by what is written: an idle connection keeps little.
                buf: BytesMut::new(),
                pieces: Vec::new(),
                piece_frames: 0,
                client_init: None,
                catalog: None,
                deferred: 0,
                login: None,
                peer,
                since: Instant::now(),
            },
        );
    }

    /// The connection is gone: its sessions detach, questions asked of it wait for the next
    /// client, and what it asked that is still open is answered to nobody.
    pub(super) fn on_disconnected(&mut self, conn: ConnId) {
        let Some(mut gone) = self.conns.remove(&conn) else {
            return;
        };
        // A client is worth a line; a bare query (`acp status`, `acp top`) is not.
        if gone.client_init.is_some() {
            tracing::info!(conn, "client disconnected");
        } else {
            tracing::debug!(conn, "connection closed");
        }
        gone.flush(false);
        let held: Vec<Arc<str>> = self
            .sessions
            .values()
            .filter(|s| s.holder == Some(conn))
            .map(|s| s.id.clone())
            .collect();
        for request in self.agent_requests.values_mut() {
            if request.conn == Some(conn) {
                request.conn = None;
            }
        }
        // Questions about no session of ours cannot wait for anyone: cancelled now.
        let orphans: Vec<u64> = self
            .agent_requests
            .iter()
            .filter(|(_, r)| r.conn.is_none() && r.session.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in orphans {
            self.cancel_parked(id);
        }
        self.lists.retain(|_, list| list.conn != conn);
        for sid in held {
            self.detach(&sid);
        }
        self.refresh_consumers();
        self.check_idle();
    }

    /// Lets `sid` go on without a client.
    fn detach(&mut self, sid: &Arc<str>) {
        let epoch = self.epoch();
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        session.holder = None;
        if matches!(session.state, SessionState::Unbound) && session.reattach.is_none() {
            // Nothing ever ran behind it: there is nothing to come back to.
            self.sessions.remove(sid);
            return;
        }
        session.detached = Some((Instant::now(), epoch));
        let running = session.turns > 0;
        tracing::info!(session = %sid, running, "session detached");
        if running && self.server.config.on_disconnect == OnDisconnect::Cancel {
            self.cancel_detached_turn(sid);
        }
        if !running {
            self.park_transcript(sid);
        }
        self.after(
            self.server.config.detached_ttl,
            Event::DetachExpired {
                session: sid.clone(),
                epoch,
            },
        );
        self.limit_detached();
    }

    /// Cancels a detached session's turn: the agent gets `session/cancel`, and questions it
    /// asked while nobody was there are answered as cancelled.
    fn cancel_detached_turn(&mut self, sid: &Arc<str>) {
        tracing::info!(session = %sid, "cancelling the turn of a detached session");
        let parked: Vec<u64> = self
            .agent_requests
            .iter()
            .filter(|(_, r)| r.session.as_ref() == Some(sid) && r.conn.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in parked {
            self.cancel_parked(id);
        }
        if let Some(link) = self.sessions.get(sid).and_then(|s| s.link()).cloned() {
            if let Some(backend) = self.backends.get_mut(&link.slot) {
                let params = json!({"sessionId": link.backend_sid});
                crate::acp::message::write_notification(
                    &mut backend.buf,
                    "session/cancel",
                    &params,
                );
            }
        }
    }

    /// Answers a waiting agent→client request as cancelled.
    fn cancel_parked(&mut self, id: u64) {
        let Some(request) = self.agent_requests.remove(&id) else {
            return;
        };
        if let Some(backend) = self.backends.get_mut(&request.slot) {
            cancel_agent_request(&mut backend.buf, &request.method, &request.backend_id);
        }
    }

    /// A detached session's time ran out: its turn is cancelled, its agent session closed, and
    /// it leaves memory (its transcript stays on disk for a later `session/load`).
    pub(super) fn on_detach_expired(&mut self, sid: &Arc<str>, epoch: u64) {
        let current = self
            .sessions
            .get(sid)
            .and_then(|s| s.detached)
            .is_some_and(|(_, e)| e == epoch);
        if current {
            tracing::info!(session = %sid, "a detached session expired");
            self.expire(sid);
        }
    }

    /// Ends a detached session: cancel, close, save, forget.
    fn expire(&mut self, sid: &Arc<str>) {
        self.cancel_detached_turn(sid);
        self.save_transcript(sid);
        let Some(session) = self.sessions.remove(sid) else {
            return;
        };
        if let Some(link) = session.link() {
            self.close_agent_session(link.slot, &link.backend_sid);
        }
        self.server.session_unbound(sid);
        self.check_idle();
    }

    /// Keeps at most `max_detached` detached sessions in memory: the longest-detached idle
    /// ones leave first (their transcripts stay on disk).
    fn limit_detached(&mut self) {
        let max = self.server.config.max_detached;
        let mut detached: Vec<(Instant, Arc<str>)> = self
            .sessions
            .values()
            .filter_map(|s| s.detached.map(|(at, _)| (at, s.id.clone())))
            .collect();
        if detached.len() <= max {
            return;
        }
        detached.sort();
        let excess = detached.len() - max;
        for (_, sid) in detached.into_iter().take(excess) {
            tracing::info!(session = %sid, "too many detached sessions; this one leaves memory");
            self.expire(&sid);
        }
    }

    /// Makes `conn` the holder of `sid`: a holder it had before loses it, questions the agent
    /// asked meanwhile are asked again here, and the agent's output streams here from now on.
    pub(super) fn attach(&mut self, conn: ConnId, sid: &Arc<str>) {
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        if let Some(previous) = session.holder.filter(|p| *p != conn) {
            tracing::info!(session = %sid, from = previous, to = conn, "session moved to another connection");
        }
        session.holder = Some(conn);
        session.detached = None;
        let mut asked = Vec::new();
        for request in self.agent_requests.values_mut() {
            if request.session.as_ref() == Some(sid) {
                request.conn = Some(conn);
                asked.push(request.frame.clone());
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            for frame in asked {
                c.buf.extend_from_slice(&frame);
            }
        }
        self.refresh_consumers();
    }

    /// Tells each agent's pump which clients it streams to, so it pauses while one of them is
    /// over its high-water mark.
    pub(super) fn refresh_consumers(&mut self) {
        for (slot, backend) in &self.backends {
            let gauges: Vec<Gauge> = self
                .sessions
                .values()
                .filter(|s| s.link().is_some_and(|l| l.slot == *slot))
                .filter_map(|s| s.holder)
                .filter_map(|c| self.conns.get(&c))
                .map(Conn::gauge)
                .collect();
            backend.set_consumers(gauges);
        }
    }
}

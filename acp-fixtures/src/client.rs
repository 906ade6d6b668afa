//! Requests the agent sends to the client, and the routing of their answers.
//!
//! Ids are numbers counted from 0 in every process, so two fixture processes
//! deliberately produce colliding ids; a proxy in between must keep them apart.

use crate::output::{request_frame, Output};
use crate::session::lock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

/// The answer to an agent-to-client request: a result or an error object.
pub type Answer = Result<Value, Value>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, Sender<Answer>>,
    closed: bool,
}

/// Tracks the agent's outstanding requests to the client.
#[derive(Default)]
pub struct ClientRequests {
    next_id: AtomicU64,
    pending: Mutex<Pending>,
}

/// The error reported to a waiting prompt when the client can no longer answer.
fn closed_error() -> Value {
    json!({"code": -32000, "message": "client closed the connection"})
}

impl ClientRequests {
    /// Sends a request and blocks until the client answers it.
    pub fn call(&self, out: &Output, method: &str, params: Value) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = channel();
        {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return Err(closed_error());
            }
            pending.waiters.insert(id, tx);
        }
        if !out.send(&request_frame(id, method, &params)) {
            lock(&self.pending).waiters.remove(&id);
            return Err(closed_error());
        }
        rx.recv().unwrap_or_else(|_| Err(closed_error()))
    }

    /// Routes a client response to the prompt waiting for it.
    pub fn resolve(&self, id: &Value, answer: Answer) {
        let waiter = id
            .as_u64()
            .and_then(|n| lock(&self.pending).waiters.remove(&n));
        match waiter {
            // The receiver only disappears if its prompt thread is gone.
            Some(tx) => drop(tx.send(answer)),
            None => eprintln!("acp-fixture-agent: response to unknown request id {id}"),
        }
    }

    /// Fails every outstanding and future request; used once stdin is closed.
    pub fn close(&self) {
        let mut pending = lock(&self.pending);
        pending.closed = true;
        for (_, tx) in pending.waiters.drain() {
            drop(tx.send(Err(closed_error())));
        }
    }
}

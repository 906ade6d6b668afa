//! The ACP aggregating proxy: framing, runtimes, probes, the picker, the hub that owns agents and
//! sessions, and the transcripts that let editors come and go.

pub mod bridge;
pub mod cache;
pub mod daemon;
pub mod endpoint;
pub mod frame;
pub mod inspect;
pub mod lines;
pub mod listing;
pub mod message;
pub mod method;
pub mod models;
pub mod modes;
pub mod outbox;
pub mod paths;
pub mod picker;
pub mod probe;
pub mod proxy;
pub mod runtime;
pub mod saver;
pub mod scan;
pub mod server;
pub mod session_defaults;
pub mod sessions;
pub mod shape;
pub mod status;
pub mod top;
pub mod trace;
pub mod trace_view;
pub mod transcript;
pub mod vault_login;

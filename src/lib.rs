//! terok-executor: runs AI coding agents in containers and serves them to editors as one ACP agent.
//!
//! # Layout
//! - [`acp`]: the aggregating ACP proxy.
//!   - [`acp::lines`], [`acp::frame`], [`acp::scan`], [`acp::shape`], [`acp::method`],
//!     [`acp::message`]: NDJSON framing, the typed envelope over raw frames (found by a
//!     hand-written scanner, or for a stream's repeated text chunks by their learned shape,
//!     serde deciding whatever they leave), and the frames the proxy originates.
//!   - [`acp::runtime`]: where agents live ([`acp::runtime::Runtime`]); `local` runs them from a
//!     host directory.
//!   - [`acp::probe`], [`acp::cache`], [`acp::models`], [`acp::modes`], [`acp::picker`]: asking
//!     each agent for its models, caching the answers (probes that outlive a request's wait land
//!     later), legacy modes as a config option, and the aggregated `agent:model` picker.
//!   - [`acp::proxy`]: the hub that owns the daemon's agent processes and sessions, with the
//!     client connections as views onto them: answering, binding, relaying, detaching.
//!   - [`acp::transcript`], [`acp::sessions`]: what each session's client saw, and the persisted
//!     session map and transcripts a restarted daemon reopens sessions from (transcripts written
//!     on a thread of their own).
//!   - [`acp::saver`]: small state files (the session map, the `.bound` marker) rewritten from
//!     the latest state on a thread of their own, so the hub never waits for the disk.
//!   - [`acp::server`], [`acp::daemon`]: state shared by a daemon's connections; the socket
//!     lifecycle around them.
//!   - [`acp::outbox`]: per-peer writers that never block the hub (a client's socket written
//!     directly while nothing is queued).
//!   - [`acp::paths`]: host and container paths, translated both ways.
//!   - [`acp::endpoint`], [`acp::listing`], [`acp::bridge`]: where a container's daemon listens,
//!     `acp list`, and `acp connect`'s bridge from an editor's stdio.
//!   - [`acp::vault_login`]: the editor's login through the host's vault, as ACP terminal auth.
//!   - [`acp::session_defaults`]: the `_meta` defaults (a task's instructions and sub-agents)
//!     the daemon adds to the sessions it opens at an agent.
//!   - [`acp::status`], [`acp::inspect`]: what a running daemon reports about itself (its
//!     connections, sessions, agent processes, probes, counters and usage), and asking it.
//!   - [`acp::trace`], [`acp::trace_view`]: wire traces of every frame of every hop, written
//!     off the forwarding path with secrets redacted, and their rendering as a timeline.
//!   - [`acp::top`]: `acp top`, a live terminal view of every daemon's sessions: the model
//!     (rates, sort, filter), the rows and their columns, the drawing, the poller, the keys, and
//!     the terminal that every exit restores.
//! - [`image`]: the L0/L1 agent images: tags, package sources, Dockerfile templates, build
//!   context, build.
//! - [`container`]: hardened agent containers: `run`, `list`, `stop`, and each container's vault
//!   broker and tokens.
//! - [`launcher`]: agent roster, vault files, container environment assembly, and the agent
//!   config directory (instructions, sub-agents, shell functions).
//! - [`cli`], [`demo`], [`logging`]: the command line, the embedded demo, stderr logging.
//! - [`completions`], [`manpage`]: shell completion scripts and man pages generated from the
//!   command line's definitions.
//! - [`podman`]: reaching Podman's API socket.
//! - [`fsutil`]: atomic file writes, private directories that go again once empty, and reads
//!   from a tree without following links.
//! - [`shell`]: quoting words for a POSIX shell.
//! - [`alloc`]: the allocator's settings for a long-lived daemon (the crate's only unsafe
//!   code: two calls into glibc).
#![deny(unsafe_code)]

pub mod acp;
pub mod alloc;
pub mod cli;
pub mod completions;
pub mod container;
pub mod demo;
pub mod fsutil;
pub mod image;
pub mod launcher;
pub mod logging;
pub mod manpage;
pub mod podman;
pub mod shell;

//! terok-executor: runs AI coding agents in containers and serves them to editors as one ACP agent.
//!
//! # Layout
//! - [`launcher`]: agent roster, vault files and container environment assembly.

pub mod launcher;

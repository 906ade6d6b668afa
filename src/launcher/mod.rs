//! The launcher: everything needed to turn an agent name into a ready-to-run
//! container description.
//!
//! # Layout
//! - [`roster`]: agent definitions (bundled YAML plus user overrides), strict
//!   schema, projections.
//! - [`vault`]: the vault's host-side files: `routes.json`, the shared-config
//!   patches that point agents at the vault, and the credential-leak scan.
//! - [`env`]: the container environment and volumes for one launch.
//! - [`paths`]: where configuration and state live on the host.
//! - [`cli`]: the `agents` and `vault` subcommands.

pub mod cli;
pub mod env;
pub mod paths;
pub mod roster;
pub mod vault;

//! The launcher: everything needed to turn an agent name into a ready-to-run
//! container description.
//!
//! # Layout
//! - [`roster`]: agent definitions (bundled YAML plus user overrides), strict
//!   schema, projections.
//! - [`vault`]: the vault's host-side files: `routes.json`, the shared-config
//!   patches that point agents at the vault, the credential-leak scan, and
//!   terok-sandbox's credential database.
//! - [`env`]: the container environment and volumes for one launch.
//! - [`agent_config`]: the agent config directory (`~/.terok`) a launch prepares.
//! - [`instructions`]: the task instructions an agent gets, from the layered config and the
//!   project.
//! - [`subagents`]: sub-agent definitions from Markdown files, as the provider's own format.
//! - [`wrappers`]: the agent shell functions of `terok-executor.sh`.
//! - [`paths`]: where configuration and state live on the host.
//! - [`auth`]: the `auth` subcommand: credentials into the vault, status, logout.
//! - [`cli`]: the `agents` and `vault` subcommands.

pub mod agent_config;
pub mod auth;
pub mod cli;
pub mod env;
pub mod instructions;
pub mod paths;
pub mod roster;
pub mod subagents;
pub mod vault;
pub mod wrappers;

//! Host-side vault files the launcher owns.
//!
//! - [`routes`]: `routes.json`, the vault's table of upstreams, generated from the roster.
//! - [`patch`]: shared-config patches that point agents at the vault, with
//!   ownership tracked in [`managed`]; editing in [`toml_patch`] and [`yaml_patch`].
//! - [`safe_io`]: symlink-safe file access inside shared directories.
//! - [`leak_scan`]: finding real credentials left in shared mounts.
//! - [`location`]: the vault's container-side addresses.
//! - [`db`]: terok-sandbox's encrypted credential database (credentials, phantom tokens).
//! - [`passphrase`]: the headless tiers of the passphrase chain that opens it.
//! - [`providers`]: which vault provider holds each roster entry's credential.
//! - [`tokens`]: a launch's phantom tokens and the variables that carry them; revocation.

pub mod db;
pub mod error;
pub mod leak_scan;
pub mod location;
pub mod managed;
pub mod passphrase;
pub mod patch;
pub mod providers;
pub mod routes;
pub mod safe_io;
pub mod tokens;
pub mod toml_patch;
pub mod yaml_patch;

pub use error::ConfigPatchError;
pub use location::{resolve_vault_location, VaultLocation};
pub use patch::{apply_shared_config_patches, write_vault_config, PatchReport, PatchSelection};

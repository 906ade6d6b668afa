//! The `run`, `list` and `stop` subcommands.

use std::path::PathBuf;

use clap::Args;

use crate::image::cli::ImageArgs;

/// `terok-executor run`: start an agent container.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The agent to run (see `terok-executor agents`).
    pub agent: String,
    /// The project directory mounted at /workspace.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Run headless on this prompt, follow the agent's output and exit with its exit code.
    #[arg(short = 'p', long, conflicts_with = "acp")]
    pub prompt: Option<String>,
    /// Start the ACP daemon for the container and print how to connect an editor.
    #[arg(long)]
    pub acp: bool,
    /// Model for headless runs (the agent's model flag).
    #[arg(short = 'm', long)]
    pub model: Option<String>,
    /// Container name (default: terok-executor-<random id>).
    #[arg(long)]
    pub name: Option<String>,
    /// Use this image instead of the L1 image of the selection (nothing is built).
    #[arg(long)]
    pub image: Option<String>,
    /// Roster entries of the image (comma-separated or `all`; default: the agent).
    #[arg(long)]
    pub agents: Option<String>,
    #[command(flatten)]
    pub image_args: ImageArgs,
    /// Relax the container hardening: keep the engine's default capabilities, allow privilege
    /// gain (sudo), a writable root filesystem, and no pids or memory limits.
    #[arg(long)]
    pub unrestricted: bool,
    /// Memory limit (e.g. 4g; default 8g, none with --unrestricted).
    #[arg(long, value_parser = crate::container::hardening::parse_memory)]
    pub memory: Option<i64>,
    /// Process limit (default 4096, none with --unrestricted).
    #[arg(long)]
    pub pids_limit: Option<i64>,
}

/// `terok-executor list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `terok-executor stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Container names (as shown by `list`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

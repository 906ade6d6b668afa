//! The `build` subcommand.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::build::{ensure_images, BuildRequest};
use super::context::CaCert;
use super::progress::Display;
use super::render::Templates;
use crate::launcher::paths::HostPaths;
use crate::launcher::roster::{Roster, Selection};

/// Options shared by `build` and `run` (which builds missing images).
#[derive(Debug, Clone, Args)]
pub struct ImageArgs {
    /// Base image of L0.
    #[arg(long, default_value = super::tags::DEFAULT_BASE_IMAGE)]
    pub base: String,
    /// Package family of the base image (deb or rpm); detected from its name when unset.
    #[arg(long, value_parser = ["deb", "rpm"])]
    pub family: Option<String>,
    /// Where packages come from: `vendors` (NodeSource, GitHub releases, install scripts where
    /// they are the usual route) or `registries` (only the distribution's archive, npm and PyPI).
    #[arg(long, default_value = "vendors", value_parser = ["vendors", "registries"])]
    pub sources: String,
    /// A certificate authority (PEM file) for the images to trust, such as a company proxy's
    /// that inspects TLS; repeatable. Builds and the agents at run time both need it there.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Directory with replacement Dockerfile templates (same file names as the bundled ones).
    #[arg(long, hide = true)]
    pub templates: Option<PathBuf>,
    /// Build output as plain lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// `terok-executor build`: the L0 and L1 images.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Roster entries to install: a comma-separated list, or `all`.
    #[arg(long, default_value = "all")]
    pub agents: String,
    /// Build even if the images exist, without the layer cache.
    #[arg(long)]
    pub rebuild: bool,
}

impl ImageArgs {
    /// The build request for `selection`.
    pub fn request(&self, selection: Selection, rebuild: bool) -> anyhow::Result<BuildRequest> {
        let templates = match &self.templates {
            Some(dir) => Templates::from_dir(dir)?,
            None => Templates::bundled(),
        };
        Ok(BuildRequest {
            base: self.base.clone(),
            family: self.family.clone(),
            sources: self.sources.parse().map_err(anyhow::Error::msg)?,
            ca_certs: self
                .ca_certs
                .iter()
                .enumerate()
                .map(|(i, path)| CaCert::read(path, i + 1))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
            selection,
            rebuild,
            check_only: false,
            templates,
            display: self.plain.then_some(Display::Lines),
        })
    }
}

/// Loads the roster, printing its warnings to stderr.
pub fn load_roster() -> anyhow::Result<Roster> {
    let roster = Roster::load(&HostPaths::from_env()).context("cannot load the agent roster")?;
    for w in &roster.warnings {
        eprintln!("{w}");
    }
    Ok(roster)
}

pub async fn run_build(args: BuildArgs) -> anyhow::Result<()> {
    let roster = load_roster()?;
    let req = args
        .image
        .request(Selection::parse(&args.agents), args.rebuild)?;
    let docker = crate::podman::connect().await?;
    let images = ensure_images(&docker, &roster, &req).await?;
    if !images.built {
        eprintln!("images exist (use --rebuild to build them again)");
    }
    println!("{}", images.l0);
    println!("{}", images.l1);
    Ok(())
}

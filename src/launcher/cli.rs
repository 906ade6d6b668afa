//! The `agents` and `vault` subcommands.
//!
//! Results go to stdout; warnings and notes go to stderr, so the output of
//! `agents --json` and `vault routes` stays machine-readable.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::paths::HostPaths;
use super::roster::{AuthMode, Roster};
use super::vault::leak_scan::{clean_leaked_credentials, scan_leaked_credentials};
use super::vault::routes::write_routes;

/// `terok-executor agents`: list the roster.
#[derive(Debug, Clone, Args)]
pub struct AgentsArgs {
    /// Include tools (gh, glab, sonar, …) as well as agents.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `terok-executor vault`: the vault's host-side files.
#[derive(Debug, Clone, Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    pub command: VaultCommand,
}

/// Vault subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum VaultCommand {
    /// Regenerate routes.json from the agent roster.
    Routes,
    /// Report real credential files found in the shared config mounts.
    Scan,
    /// Delete real credential files found in the shared config mounts.
    Clean,
}

fn load_roster(paths: &HostPaths) -> anyhow::Result<Roster> {
    let roster = Roster::load(paths).context("cannot load the agent roster")?;
    for w in &roster.warnings {
        eprintln!("{w}");
    }
    Ok(roster)
}

#[derive(Serialize)]
struct AgentRow<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'static str,
    auth_modes: Vec<AuthMode>,
    route_prefix: Option<&'a str>,
    installable: bool,
}

/// Treats a closed stdout (e.g. piped into `head`) as success.
fn quiet_pipe(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Runs `agents`.
pub fn run_agents(args: &AgentsArgs) -> anyhow::Result<()> {
    quiet_pipe(agents(args))
}

/// Runs `vault <command>`.
pub fn run_vault(args: &VaultArgs) -> anyhow::Result<()> {
    quiet_pipe(vault(args))
}

fn agents(args: &AgentsArgs) -> anyhow::Result<()> {
    let paths = HostPaths::from_env();
    let roster = load_roster(&paths)?;
    let names = if args.all {
        roster.all_names()
    } else {
        roster.agent_names()
    };
    let rows: Vec<AgentRow<'_>> = names
        .iter()
        .filter_map(|name| roster.entry(name))
        .map(|e| AgentRow {
            name: &e.name,
            label: &e.label,
            kind: e.kind.as_str(),
            auth_modes: roster
                .auth_providers()
                .get(&e.name)
                .map(|a| a.modes.clone())
                .unwrap_or_default(),
            route_prefix: roster
                .vault_routes()
                .get(&e.name)
                .map(|r| r.route_prefix.as_str()),
            installable: roster.installs().contains_key(&e.name),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("No agents registered.");
        return Ok(());
    }
    let w_name = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    let w_label = rows
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(0)
        .max("LABEL".len());
    writeln!(out, "{:<w_name$}  {:<w_label$}  TYPE", "NAME", "LABEL")?;
    for r in &rows {
        writeln!(
            out,
            "{:<w_name$}  {:<w_label$}  {}",
            r.name, r.label, r.kind
        )?;
    }
    Ok(())
}

fn vault(args: &VaultArgs) -> anyhow::Result<()> {
    let paths = HostPaths::from_env();
    let roster = load_roster(&paths)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        VaultCommand::Routes => {
            let path = paths.routes_path();
            write_routes(&roster, &path)?;
            writeln!(out, "Routes written to {}", path.display())?;
        }
        VaultCommand::Scan => {
            let report = scan_leaked_credentials(&roster, &paths.mounts_dir);
            for w in &report.warnings {
                eprintln!("warning [vault]: {w}");
            }
            if report.leaks.is_empty() {
                writeln!(out, "No leaked credential files found.")?;
            } else {
                writeln!(
                    out,
                    "WARNING: Real credentials found in shared config mounts:"
                )?;
                for leak in &report.leaks {
                    writeln!(out, "  {}: {}", leak.provider, leak.path.display())?;
                }
                writeln!(
                    out,
                    "These files are mounted into containers alongside vault phantom tokens."
                )?;
                writeln!(out, "Run 'terok-executor vault clean' to remove them.")?;
            }
        }
        VaultCommand::Clean => {
            let (removed, warnings) = clean_leaked_credentials(&roster, &paths.mounts_dir);
            for w in &warnings {
                eprintln!("warning [vault]: {w}");
            }
            if removed.is_empty() {
                writeln!(out, "No leaked credential files found.")?;
            }
            for leak in &removed {
                writeln!(out, "Removed {}: {}", leak.provider, leak.path.display())?;
            }
        }
    }
    Ok(())
}

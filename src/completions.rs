//! `terok-executor completions <SHELL>`: the shell completion script, generated from the clap
//! definitions in [`crate::cli`] so it offers exactly the commands, options and values the
//! parser accepts.
//!
//! The script goes to stdout and nothing else does, so `completions bash > FILE` is the whole
//! install step.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::{Generator, Shell};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell whose completion script to print.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    let script = script(args.shell)?;
    let mut out = std::io::stdout().lock();
    out.write_all(script.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the completion script")
}

/// The completion script of `terok-executor` for `shell`.
fn script(shell: Shell) -> anyhow::Result<String> {
    let mut cmd = crate::cli::Cli::command();
    let bin = cmd.get_name().to_owned();
    cmd.set_bin_name(&bin);
    cmd.build();
    let mut script = Vec::new();
    shell
        .try_generate(&cmd, &mut script)
        .context("cannot generate the completion script")?;
    let script = String::from_utf8(script).context("the completion script is not UTF-8")?;
    Ok(match shell {
        Shell::Bash => repair_bash_states(&script, &bin),
        _ => script,
    })
}

/// The bash script with its subcommand states spelled one way.
///
/// The generator's loop names the state of `terok-executor acp` `terok__executor__subcmd__acp`
/// (the bin name's hyphens as `__`), but labels the `case` arm that answers it
/// `terok__subcmd__executor__subcmd__acp`, so for a bin name with a hyphen no subcommand's
/// arguments ever complete (clap-rs/clap#6421, clap_complete 4.6.11). Respelling the arms the way
/// the loop spells the state repairs it, and is a no-op once the generator agrees with itself.
fn repair_bash_states(script: &str, bin: &str) -> String {
    let arm = format!("{}__subcmd__", bin.replace('-', "__subcmd__"));
    let state = format!("{}__subcmd__", bin.replace('-', "__"));
    script.replace(&arm, &state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_arms_are_spelled_like_the_loop_state() {
        let script = script(Shell::Bash).unwrap();
        assert!(script.contains("cmd=\"terok__executor__subcmd__acp\""));
        assert!(script.contains("\n        terok__executor__subcmd__acp)\n"));
        assert!(!script.contains("terok__subcmd__executor"));
    }
}

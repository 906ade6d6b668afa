//! `terok-executor man`: the manual, generated from the clap definitions in [`crate::cli`].
//!
//! There is one page per command: `terok-executor(1)` for the whole program, and one for each
//! visible subcommand, named after its path (`terok-executor-acp(1)`,
//! `terok-executor-acp-list(1)`), which is also how each page's SUBCOMMANDS section refers to
//! the next level. By default every page goes to stdout as one roff document, the program's
//! page first and then depth first, so `terok-executor man | man -l -` reads the whole manual.
//! With `--out-dir DIR` each page is written to its own `DIR/<name>.1` instead, ready for a
//! `man1` directory on `MANPATH`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_mangen::Man;

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command into DIR (terok-executor.1, terok-executor-acp.1, ...)
    /// instead of printing them all to stdout; DIR is created if missing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the manual, or writes its pages to `--out-dir`.
pub fn run(args: &ManArgs) -> anyhow::Result<()> {
    let pages = pages();
    match &args.out_dir {
        None => {
            let mut out = std::io::stdout().lock();
            for page in &pages {
                out.write_all(render(page)?.as_bytes())
                    .context("cannot write the man page")?;
            }
            out.flush().context("cannot write the man page")
        }
        Some(dir) => write_pages(&pages, dir),
    }
}

/// One page per visible command, the program's first, then depth first.
fn pages() -> Vec<Man> {
    let mut cmd = crate::cli::Cli::command().disable_help_subcommand(true);
    // Building fills in each subcommand's display name (`terok-executor-acp`), which names its
    // page, and its usage line (`terok-executor acp ...`).
    cmd.build();
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    let mut pages = Vec::new();
    collect(&cmd, &source, &mut pages);
    pages
}

fn collect(cmd: &clap::Command, source: &str, pages: &mut Vec<Man>) {
    pages.push(Man::new(cmd.clone()).source(source));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, source, pages);
    }
}

fn write_pages(pages: &[Man], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for page in pages {
        let path = dir.join(page.get_filename());
        std::fs::write(&path, render(page)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tracing::info!(dir = %dir.display(), pages = pages.len(), "wrote the man pages");
    Ok(())
}

/// The page as roff source in plain ASCII: every other character is written as a groff
/// `\[uXXXX]` escape, so no formatter has to guess the encoding (man-db's `man -l` handed the
/// UTF-8 bytes of a `…` in a help text to troff, which warned about them and printed garbage).
fn render(page: &Man) -> anyhow::Result<String> {
    let mut roff = Vec::new();
    page.render(&mut roff)
        .context("cannot render the man page")?;
    let roff = String::from_utf8(roff).context("the man page is not UTF-8")?;
    let mut ascii = String::with_capacity(roff.len());
    for c in roff.chars() {
        if c.is_ascii() {
            ascii.push(c);
        } else {
            let _ = write!(ascii, "\\[u{:04X}]", u32::from(c));
        }
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_help_text_becomes_groff_escapes() {
        let cmd = clap::Command::new("x").about("tools (gh, …) – and 😀");
        let roff = render(&Man::new(cmd)).unwrap();
        assert!(roff.is_ascii(), "{roff}");
        assert!(
            roff.contains("tools (gh, \\[u2026]) \\[u2013] and \\[u1F600]"),
            "{roff}"
        );
    }
}

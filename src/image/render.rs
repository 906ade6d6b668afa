//! Dockerfile rendering: the L0 and L1 templates and the roster's install snippets.
//!
//! Templates are Jinja (rendered by minijinja with the trailing newline kept and no escaping, as
//! Dockerfiles are not HTML). Each install snippet is itself a template with `family` in scope,
//! and `sources` in scope, so one roster entry can carry apt and dnf variants, and a
//! registry-only variant.

use std::path::Path;

use minijinja::{context, Environment};

use super::family::Family;
use super::sources::{Sources, NODE_VERSION, NPM_VERSION};
use crate::launcher::roster::{HelpSection, Roster};

/// The OCI label naming the roster entries baked into an L1 image.
pub const AGENTS_LABEL: &str = "ai.terok.agents";
/// The in-container manifest of installed entries.
pub const INSTALLED_ENV_PATH: &str = "/etc/terok/installed.env";

const BUNDLED_L0: &str = include_str!("../../resources/templates/l0.dev.Dockerfile.template");
const BUNDLED_L1: &str = include_str!("../../resources/templates/l1.agent-cli.Dockerfile.template");

/// File names of the templates (bundled, or in a `--templates` directory).
pub const L0_TEMPLATE: &str = "l0.dev.Dockerfile.template";
pub const L1_TEMPLATE: &str = "l1.agent-cli.Dockerfile.template";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot render {what}: {source:#}")]
    Template {
        what: String,
        source: minijinja::Error,
    },
}

/// The two Dockerfile templates of a build.
#[derive(Debug, Clone)]
pub struct Templates {
    pub l0: String,
    pub l1: String,
}

impl Templates {
    /// The templates shipped in the binary.
    pub fn bundled() -> Templates {
        Templates {
            l0: BUNDLED_L0.to_owned(),
            l1: BUNDLED_L1.to_owned(),
        }
    }

    /// The templates in `dir` (same file names as the bundled ones).
    pub fn from_dir(dir: &Path) -> Result<Templates, RenderError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| RenderError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Ok(Templates {
            l0: read(L0_TEMPLATE)?,
            l1: read(L1_TEMPLATE)?,
        })
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

fn render(what: &str, source: &str, ctx: minijinja::Value) -> Result<String, RenderError> {
    let template_error = |source| RenderError::Template {
        what: what.to_owned(),
        source,
    };
    environment()
        .render_str(source, ctx)
        .map_err(template_error)
}

/// The L0 Dockerfile for `base` (already normalised).
pub fn render_l0(templates: &Templates, base: &str, family: Family) -> Result<String, RenderError> {
    render(
        L0_TEMPLATE,
        &templates.l0,
        context! { BASE_IMAGE => base, family => family.as_str() },
    )
}

/// One roster install snippet with `family` and `sources` in scope.
pub fn render_snippet(
    name: &str,
    snippet: &str,
    family: Family,
    sources: Sources,
) -> Result<String, RenderError> {
    render(
        &format!("the install snippet of {name}"),
        snippet,
        context! { family => family.as_str(), sources => sources.as_str() },
    )
}

/// The L1 Dockerfile on top of `l0_image` for the resolved, sorted `selected` entries.
pub fn render_l1(
    templates: &Templates,
    roster: &Roster,
    l0_image: &str,
    family: Family,
    sources: Sources,
    selected: &[String],
) -> Result<String, RenderError> {
    let mut root = Vec::new();
    let mut dev = Vec::new();
    for name in selected {
        let Some(install) = roster.installs().get(name) else {
            continue;
        };
        if !install.run_as_root.is_empty() {
            root.push(render_snippet(name, &install.run_as_root, family, sources)?);
        }
        if !install.run_as_dev.is_empty() {
            dev.push(render_snippet(name, &install.run_as_dev, family, sources)?);
        }
    }
    render(
        L1_TEMPLATE,
        &templates.l1,
        context! {
            BASE_IMAGE => l0_image,
            family => family.as_str(),
            sources => sources.as_str(),
            node_version => NODE_VERSION,
            npm_version => NPM_VERSION,
            install_root_snippets => root,
            install_dev_snippets => dev,
            installed_agents_csv => selected.join(","),
            agents_label => AGENTS_LABEL,
            installed_env_path => INSTALLED_ENV_PATH,
        },
    )
}

/// The `help.d` fragments for `selected`: file name and content, one file per non-empty section
/// (`agents.txt`, `dev-tools.txt`), labels in selection order with escapes decoded.
pub fn help_fragments(roster: &Roster, selected: &[String]) -> Vec<(&'static str, String)> {
    let mut agents = String::new();
    let mut tools = String::new();
    for name in selected {
        let Some(help) = roster.helps().get(name).filter(|h| !h.label.is_empty()) else {
            continue;
        };
        let out = match help.section {
            HelpSection::Agent => &mut agents,
            HelpSection::DevTool => &mut tools,
        };
        out.push_str(&decode_escapes(&help.label));
        out.push('\n');
    }
    let mut files = Vec::new();
    if !agents.is_empty() {
        files.push(("agents.txt", agents));
    }
    if !tools.is_empty() {
        files.push(("dev-tools.txt", tools));
    }
    files
}

/// Expands backslash escapes (`\033`, `\x1b`, `\u00e4`, `\n`, ...) and leaves everything else,
/// non-ASCII text included, as it is. An escape that names no character stays verbatim.
pub fn decode_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (decoded, used) = decode_one(after);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the escape at the start of `s` (after the backslash): the character and the bytes used.
fn decode_one(s: &str) -> (Option<char>, usize) {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return (None, 0);
    };
    let radix_run = |start: usize, max: usize, radix: u32| {
        let digits: usize = s[start..]
            .chars()
            .take(max)
            .take_while(|c| c.is_digit(radix))
            .count();
        (
            digits,
            u32::from_str_radix(&s[start..start + digits], radix).ok(),
        )
    };
    match first {
        b'0'..=b'7' => {
            let (n, value) = radix_run(0, 3, 8);
            (value.and_then(char::from_u32), n)
        }
        b'x' => match radix_run(1, 2, 16) {
            (2, value) => (value.and_then(char::from_u32), 3),
            _ => (None, 0),
        },
        b'u' => match radix_run(1, 4, 16) {
            (4, value) => (value.and_then(char::from_u32), 5),
            _ => (None, 0),
        },
        b'n' => (Some('\n'), 1),
        b'r' => (Some('\r'), 1),
        b't' => (Some('\t'), 1),
        b'b' => (Some('\u{8}'), 1),
        b'f' => (Some('\u{c}'), 1),
        b'a' => (Some('\u{7}'), 1),
        b'v' => (Some('\u{b}'), 1),
        b'\\' => (Some('\\'), 1),
        b'\'' => (Some('\''), 1),
        b'"' => (Some('"'), 1),
        _ => (None, 0),
    }
}

#[cfg(test)]
mod tests;

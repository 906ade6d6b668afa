//! Command-line parsing for the fixture agent.
//!
//! Every behaviour of the fixture is chosen by a flag, so that tests, the demo
//! and the benchmark can describe the agent they need in one command line.

use serde_json::{json, Value};
use std::time::Duration;

/// How the agent advertises its model selector in `session/new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelStyle {
    /// A `configOptions` select with category `model`.
    Config,
    /// Only the legacy `models` block.
    Legacy,
    /// Both the config option and the legacy block.
    Both,
    /// A `configOptions` select whose options are split into two groups.
    Grouped,
    /// No model selector at all.
    None,
}

impl ModelStyle {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "config" => Some(Self::Config),
            "legacy" => Some(Self::Legacy),
            "both" => Some(Self::Both),
            "grouped" => Some(Self::Grouped),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Tells whether the model appears in `configOptions`.
    pub fn has_config_option(self) -> bool {
        matches!(self, Self::Config | Self::Both | Self::Grouped)
    }

    /// Tells whether the legacy `models` block is advertised.
    pub fn has_legacy_block(self) -> bool {
        matches!(self, Self::Legacy | Self::Both)
    }
}

/// Which request the agent accepts to change the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetModelMethod {
    /// Only `session/set_config_option` with the model option id.
    Config,
    /// Only the legacy `session/set_model`.
    Legacy,
    /// Both requests.
    Both,
}

impl SetModelMethod {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "config" => Some(Self::Config),
            "legacy" => Some(Self::Legacy),
            "both" => Some(Self::Both),
            _ => None,
        }
    }

    /// The method derived from the model style when none is given.
    fn derived_from(style: ModelStyle) -> Self {
        match style {
            ModelStyle::Legacy => Self::Legacy,
            ModelStyle::Both => Self::Both,
            ModelStyle::Config | ModelStyle::Grouped | ModelStyle::None => Self::Config,
        }
    }

    /// Tells whether `session/set_config_option` may change the model.
    pub fn accepts_config(self) -> bool {
        matches!(self, Self::Config | Self::Both)
    }

    /// Tells whether `session/set_model` is accepted.
    pub fn accepts_legacy(self) -> bool {
        matches!(self, Self::Legacy | Self::Both)
    }
}

/// The complete behaviour of one fixture process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Name reported in `agentInfo` and used in replies and session ids.
    pub name: String,
    /// Prefix of session ids; the session number follows it.
    pub session_prefix: String,
    /// Model ids; the first one is current when a session starts.
    pub models: Vec<String>,
    /// How the model selector is advertised.
    pub model_style: ModelStyle,
    /// The `configOptions` id of the model select.
    pub model_option_id: String,
    /// Whether a `mode` config option is advertised.
    pub mode_option: bool,
    /// Which requests may change the model.
    pub set_model_method: SetModelMethod,
    /// The `agentCapabilities` object sent by `initialize`.
    pub caps: Value,
    /// Whether `session/new` requires a prior `authenticate`.
    pub auth_required: bool,
    /// Where a successful `authenticate` is remembered across processes (like real agents'
    /// credential files); implies `auth_required` until the file exists.
    pub auth_file: Option<String>,
    /// Whether the login is an API key carried in `authenticate`'s `_meta`, held in memory only.
    pub auth_meta: bool,
    /// A variable whose (non-empty) value counts as a login, like an API key in the
    /// environment; implies `auth_required` while it is unset.
    pub auth_env: Option<String>,
    /// Whether `initialize` offers a terminal login and a gateway method only to clients that
    /// advertise `auth.terminal` and `auth._meta.gateway`.
    pub capable_auth: bool,
    /// Whether modes come only as the legacy `modes` block (set through `session/set_mode`).
    pub legacy_modes: bool,
    /// Where sessions are kept across processes (`--store DIR`).
    pub store: Option<String>,
    /// Whether `initialize` answers with an error.
    pub fail_initialize: bool,
    /// Exit with this code before reading anything.
    pub exit_on_start: Option<i32>,
    /// Delay before answering `initialize` and `session/new`.
    pub delay: Duration,
    /// Methods whose requests are never answered.
    pub hang_on: Vec<String>,
    /// Whether the agent keeps running after stdin reaches end of file.
    pub ignore_stdin_eof: bool,
    /// Whether a few lines are written to stderr at start.
    pub stderr_noise: bool,
    /// Announces the session's commands (`available_commands_update`) right after answering
    /// `session/new`, as the real adapters do.
    pub announce_commands: bool,
    /// File that receives a copy of every line read from stdin.
    pub log: Option<String>,
}

/// The capabilities advertised when `--caps` is absent.
pub fn default_caps() -> Value {
    json!({
        "loadSession": false,
        "promptCapabilities": {"image": false, "audio": false, "embeddedContext": false},
        "mcpCapabilities": {"http": false, "sse": false},
        "sessionCapabilities": {}
    })
}

/// The usage text printed on a command-line error.
pub const USAGE: &str = "\
usage: acp-fixture-agent [options]
  --name NAME                 agent name (default fixture)
  --session-prefix P          session ids are P<n> (default NAME-sess-<n>)
  --models a,b,c              model ids (default small,large)
  --model-style STYLE         config|legacy|both|grouped|none (default config)
  --model-option-id ID        config option id of the model select (default model)
  --mode-option               also advertise a mode config option
  --set-model-method M        config|legacy|both (default derived from the style)
  --caps JSON                 agentCapabilities object
  --auth-required             session/new needs authenticate(login) first
  --auth-file PATH            like --auth-required, but a successful login creates PATH
                              and every process finding PATH is authenticated
  --auth-meta                 session/new needs authenticate(api-key) with _meta.api-key.apiKey;
                              the login is held in memory only
  --capable-auth              initialize offers a terminal login to clients with auth.terminal
                              and a gateway method to clients with auth._meta.gateway
  --legacy-modes              modes default/plan/yolo only as the legacy modes block
  --store DIR                 keep sessions in DIR (list, load, resume, delete across processes)
  --fail-initialize           initialize answers an error
  --exit-on-start CODE        exit with CODE before reading anything
  --delay-ms N                delay initialize and session/new answers
  --hang-on METHOD            never answer this method (repeatable)
  --ignore-stdin-eof          keep running after stdin is closed
  --stderr-noise              write a few lines to stderr at start
  --log FILE                  append every received line to FILE (or ACP_FIXTURE_LOG)";

/// Parses the arguments (without the program name) into a configuration.
///
/// The error is a one-line message explaining the problem.
pub fn parse(args: &[String]) -> Result<Config, String> {
    let mut name = "fixture".to_string();
    let mut session_prefix = None;
    let mut models = vec!["small".to_string(), "large".to_string()];
    let mut model_style = ModelStyle::Config;
    let mut model_option_id = "model".to_string();
    let mut mode_option = false;
    let mut set_model_method = None;
    let mut caps = default_caps();
    let mut auth_required = false;
    let mut auth_meta = false;
    let mut auth_env = None;
    let mut capable_auth = false;
    let mut legacy_modes = false;
    let mut auth_file = None;
    let mut store = None;
    let mut fail_initialize = false;
    let mut exit_on_start = None;
    let mut delay = Duration::ZERO;
    let mut hang_on = Vec::new();
    let mut ignore_stdin_eof = false;
    let mut stderr_noise = false;
    let mut announce_commands = false;
    let mut log = None;

    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (flag.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone().or_else(|| iter.next().cloned()) {
                Some(v) => Ok(v),
                None => Err(format!("{flag} needs {what}")),
            }
        };
        match flag {
            "--name" => name = value("a name")?,
            "--session-prefix" => session_prefix = Some(value("a prefix")?),
            "--models" => {
                let list = value("a comma-separated list")?;
                models = list
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect();
                if models.is_empty() {
                    return Err("--models needs at least one model id".into());
                }
            }
            "--model-style" => {
                let v = value("a style")?;
                model_style =
                    ModelStyle::parse(&v).ok_or_else(|| format!("unknown model style {v:?}"))?;
            }
            "--model-option-id" => model_option_id = value("an option id")?,
            "--mode-option" => mode_option = true,
            "--set-model-method" => {
                let v = value("a method")?;
                set_model_method = Some(
                    SetModelMethod::parse(&v)
                        .ok_or_else(|| format!("unknown set-model method {v:?}"))?,
                );
            }
            "--caps" => {
                let v = value("a JSON object")?;
                caps = serde_json::from_str(&v).map_err(|e| format!("--caps: {e}"))?;
                if !caps.is_object() {
                    return Err("--caps must be a JSON object".into());
                }
            }
            "--auth-required" => auth_required = true,
            "--auth-meta" => {
                auth_required = true;
                auth_meta = true;
            }
            "--auth-env" => {
                auth_required = true;
                auth_env = Some(value("a variable name")?);
            }
            "--capable-auth" => capable_auth = true,
            "--legacy-modes" => legacy_modes = true,
            "--store" => store = Some(value("a directory")?),
            "--auth-file" => {
                auth_required = true;
                auth_file = Some(value("a file path")?);
            }
            "--fail-initialize" => fail_initialize = true,
            "--exit-on-start" => {
                let v = value("an exit code")?;
                exit_on_start = Some(v.parse().map_err(|_| format!("bad exit code {v:?}"))?);
            }
            "--delay-ms" => {
                let v = value("milliseconds")?;
                let ms: u64 = v.parse().map_err(|_| format!("bad delay {v:?}"))?;
                delay = Duration::from_millis(ms);
            }
            "--hang-on" => hang_on.push(value("a method")?),
            "--ignore-stdin-eof" => ignore_stdin_eof = true,
            "--stderr-noise" => stderr_noise = true,
            "--announce-commands" => announce_commands = true,
            "--log" => log = Some(value("a file path")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
        // Flags without a value must not carry one.
        if inline.is_some()
            && matches!(
                flag,
                "--mode-option"
                    | "--auth-required"
                    | "--auth-meta"
                    | "--capable-auth"
                    | "--legacy-modes"
                    | "--fail-initialize"
                    | "--ignore-stdin-eof"
                    | "--stderr-noise"
                    | "--announce-commands"
            )
        {
            return Err(format!("{flag} takes no value"));
        }
    }

    if log.is_none() {
        log = std::env::var("ACP_FIXTURE_LOG")
            .ok()
            .filter(|p| !p.is_empty());
    }
    if legacy_modes && mode_option {
        return Err("--legacy-modes and --mode-option exclude each other".into());
    }
    let session_prefix = session_prefix.unwrap_or_else(|| format!("{name}-sess-"));
    let set_model_method =
        set_model_method.unwrap_or_else(|| SetModelMethod::derived_from(model_style));

    Ok(Config {
        name,
        session_prefix,
        models,
        model_style,
        model_option_id,
        mode_option,
        set_model_method,
        caps,
        auth_required,
        auth_file,
        auth_meta,
        auth_env,
        capable_auth,
        legacy_modes,
        store,
        fail_initialize,
        exit_on_start,
        delay,
        hang_on,
        ignore_stdin_eof,
        stderr_noise,
        announce_commands,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.name, "fixture");
        assert_eq!(cfg.session_prefix, "fixture-sess-");
        assert_eq!(cfg.models, ["small", "large"]);
        assert_eq!(cfg.set_model_method, SetModelMethod::Config);
    }

    #[test]
    fn derived_set_model_method() {
        let cfg = parse(&args(&["--model-style", "legacy"])).unwrap();
        assert_eq!(cfg.set_model_method, SetModelMethod::Legacy);
        let cfg = parse(&args(&[
            "--model-style=both",
            "--set-model-method",
            "config",
        ]))
        .unwrap();
        assert_eq!(cfg.set_model_method, SetModelMethod::Config);
    }

    #[test]
    fn errors() {
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(parse(&args(&["--name"])).is_err());
        assert!(parse(&args(&["--caps", "[1]"])).is_err());
        assert!(parse(&args(&["--model-style", "odd"])).is_err());
        assert!(parse(&args(&["--mode-option=yes"])).is_err());
    }
}

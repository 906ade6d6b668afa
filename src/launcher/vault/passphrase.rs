//! Finding the vault's passphrase without asking anyone: the tiers of terok-sandbox's chain that
//! work headless, read the way terok-sandbox writes them.
//!
//! In order:
//! 1. `TEROK_VAULT_PASSPHRASE_FILE`: a file holding the passphrase (one trailing newline is
//!    dropped). Refused when other users may read it.
//! 2. The session cache that `terok-sandbox vault unlock` fills when no per-user systemd runs:
//!    `$XDG_RUNTIME_DIR/terok/vault-session/<digest>`, the digest being the first 32 hex digits of
//!    SHA-256 over `<hostname>\0<absolute db path>`.
//! 3. `credentials.passphrase_command` from the config: split like a shell would (no shell runs
//!    it), its stdout without trailing CR/LF, within 30 s. When it is set and fails, that is the
//!    answer: the chain stops with its error.
//!
//! Not read: the systemd-creds sealed file, the OS keyring and the kernel keyring. Each needs a
//! service (systemd, the Secret Service over D-Bus, `keyctl` on the user keyring) that the
//! daemon's host may not run; terok-sandbox's `vault unlock` puts the passphrase where tier 2
//! finds it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::launcher::paths::LayeredConfig;

/// The passphrase file variable.
pub const PASSPHRASE_FILE_VAR: &str = "TEROK_VAULT_PASSPHRASE_FILE";
/// How long `passphrase_command` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Which tier gave the passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    File,
    SessionCache,
    Command,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::File => PASSPHRASE_FILE_VAR,
            Tier::SessionCache => "session cache",
            Tier::Command => "passphrase_command",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("{PASSPHRASE_FILE_VAR}={}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("credentials.passphrase_command: {0}")]
    Command(String),
    #[error(
        "no passphrase for the vault: set credentials.passphrase_command in the config, run \
         `terok-sandbox vault unlock`, or point {PASSPHRASE_FILE_VAR} at a file (systemd-creds and \
         keyring tiers are not read by terok-executor)"
    )]
    None,
}

/// Where the chain looks.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub passphrase_file: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    pub hostname: String,
    pub command: Option<String>,
}

impl Sources {
    /// From the environment and the layered config.
    pub fn from_env(config: &LayeredConfig) -> Sources {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Sources {
            passphrase_file: var(PASSPHRASE_FILE_VAR),
            runtime_dir: var("XDG_RUNTIME_DIR"),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            command: config
                .string("credentials", "passphrase_command")
                .filter(|c| !c.trim().is_empty()),
        }
    }
}

/// The passphrase for the database at `db`, and where it came from.
pub fn resolve(db: &Path, sources: &Sources) -> Result<(String, Tier), PassphraseError> {
    if let Some(path) = &sources.passphrase_file {
        return read_file(path).map(|p| (p, Tier::File));
    }
    if let Some(dir) = &sources.runtime_dir {
        let cache = dir
            .join("terok/vault-session")
            .join(session_digest(&sources.hostname, db));
        if let Ok(text) = std::fs::read_to_string(&cache) {
            if !text.is_empty() {
                return Ok((text, Tier::SessionCache));
            }
        }
    }
    if let Some(command) = &sources.command {
        return run_command(command).map(|p| (p, Tier::Command));
    }
    Err(PassphraseError::None)
}

/// The session cache's file name for `db`: terok-sandbox's digest of host name and path.
pub fn session_digest(hostname: &str, db: &Path) -> String {
    let absolute = std::path::absolute(db).unwrap_or_else(|_| db.to_owned());
    let mut hasher = Sha256::new();
    hasher.update(hostname.as_bytes());
    hasher.update([0u8]);
    hasher.update(absolute.as_os_str().as_encoded_bytes());
    let digest = hasher.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn read_file(path: &Path) -> Result<String, PassphraseError> {
    let err = |reason: String| PassphraseError::File {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "mode {:o} lets other users read it; chmod 600 it",
            meta.permissions().mode() & 0o777
        )));
    }
    let mut text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(err("it is empty".into()));
    }
    Ok(text)
}

fn run_command(command: &str) -> Result<String, PassphraseError> {
    let words = shlex::split(command)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| PassphraseError::Command("cannot split it into words".into()))?;
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| PassphraseError::Command(format!("cannot start {}: {e}", words[0])))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PassphraseError::Command(format!(
                    "gave no answer within {COMMAND_TIMEOUT:?}"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(PassphraseError::Command(e.to_string())),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(PassphraseError::Command(format!("exited with {status}")));
    }
    let mut text = String::from_utf8(out)
        .map_err(|_| PassphraseError::Command("its output is not UTF-8".into()))?;
    while text.ends_with(['\n', '\r']) {
        text.pop();
    }
    if text.is_empty() {
        return Err(PassphraseError::Command("printed nothing".into()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_digest_is_terok_sandboxs() {
        // hashlib.sha256(b"host\0/v/credentials.db").hexdigest()[:32]
        assert_eq!(
            session_digest("host", Path::new("/v/credentials.db")),
            "443ef6ed6a7e42184dfdfd75699b8bb9"
        );
    }

    #[test]
    fn tiers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("credentials.db");
        let none = Sources::default();
        assert!(matches!(resolve(&db, &none), Err(PassphraseError::None)));

        let command = Sources {
            command: Some("printf 'from-command\\r\\n'".into()),
            ..Sources::default()
        };
        assert_eq!(
            resolve(&db, &command).unwrap(),
            ("from-command".into(), Tier::Command)
        );

        let runtime = dir.path().join("run");
        let cache = runtime.join("terok/vault-session");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join(session_digest("box", &db)), "from-cache").unwrap();
        let cached = Sources {
            runtime_dir: Some(runtime.clone()),
            hostname: "box".into(),
            ..command.clone()
        };
        assert_eq!(
            resolve(&db, &cached).unwrap(),
            ("from-cache".into(), Tier::SessionCache)
        );

        let file = dir.path().join("pass");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let filed = Sources {
            passphrase_file: Some(file.clone()),
            ..cached
        };
        assert_eq!(
            resolve(&db, &filed).unwrap(),
            ("from-file".into(), Tier::File)
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = resolve(&db, &filed).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_failing_command_stops_the_chain() {
        let db = Path::new("/nonexistent/credentials.db");
        for (command, want) in [
            ("false", "exited"),
            ("true", "printed nothing"),
            ("/no/such/program", "cannot start"),
            ("'unclosed", "cannot split"),
        ] {
            let sources = Sources {
                command: Some(command.into()),
                ..Sources::default()
            };
            let err = resolve(db, &sources).unwrap_err().to_string();
            assert!(err.contains(want), "{command}: {err}");
        }
    }
}

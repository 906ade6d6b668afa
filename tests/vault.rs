//! Credentials through the real vault: terok-sandbox 0.6.0 (its Python package, in the venv that
//! `.ci/run` makes and names in `TEROK_TEST_SANDBOX_PY`) creates the encrypted database and runs
//! the token broker; terok-executor stores, lists and removes credentials in it and mints and
//! revokes phantom tokens that the broker honours. Without the venv the tests skip, except
//! under CI, where they fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use terok_executor::launcher::vault::db::CredentialDb;

mod common;
use common::vault::{mock_upstream, sandbox_python};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");
const PASSPHRASE: &str = "vault-test-passphrase";

/// A vault made by terok-sandbox in a temporary directory, with its config file.
struct Vault {
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Vault {
    fn new() -> Option<Vault> {
        let python = sandbox_python()?;
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault { python, dir };
        vault.write_config(&format!("printf {PASSPHRASE}"));
        std::fs::create_dir_all(vault.vault_dir()).unwrap();
        vault.py("db, _ = SandboxConfig().open_credential_db_with_source(); db.close()");
        Some(vault)
    }

    fn vault_dir(&self) -> PathBuf {
        self.dir.path().join("vault")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn write_config(&self, command: &str) {
        std::fs::write(
            self.config(),
            format!("credentials:\n  use_keyring: false\n  passphrase_command: \"{command}\"\n"),
        )
        .unwrap();
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("TEROK_CONFIG_FILE", self.config())
            .env("TEROK_VAULT_DIR", self.vault_dir())
            .env("TEROK_ROOT", self.dir.path().join("root"))
            .env("TEROK_CONFIG_DIR", self.dir.path().join("config"))
            .env_remove("TEROK_VAULT_PASSPHRASE_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("RUST_LOG");
    }

    /// Runs Python with terok-sandbox on this vault; its stdout.
    fn py(&self, code: &str) -> String {
        let mut cmd = Command::new(&self.python);
        cmd.arg("-c").arg(format!(
            "import json\nfrom terok_sandbox import SandboxConfig\n{code}"
        ));
        self.env(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What terok-sandbox's own API sees in set `default`: provider → credential.
    fn stored(&self) -> Value {
        let text = self.py(
            "db = SandboxConfig().open_credential_db()\n\
             print(json.dumps({p: db.load_credential('default', p) for p in db.list_credentials('default')}))",
        );
        serde_json::from_str(text.trim()).unwrap()
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.env(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn open(&self) -> CredentialDb {
        CredentialDb::open(&self.vault_dir().join("credentials.db"), PASSPHRASE).unwrap()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn auth_stores_what_terok_sandbox_reads_lists_it_and_logs_out() {
    let Some(vault) = Vault::new() else { return };
    let key = "sk-ant-test-0123456789";
    let key_file = vault.dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let out = vault.run(
        &[
            "auth",
            "claude",
            "--api-key-file",
            key_file.to_str().unwrap(),
        ],
        "",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(key) && !stderr.contains(key));

    let out = vault.run(
        &["auth", "codex", "--api-key-file", "-"],
        "sk-openai-test\n",
    );
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        vault.stored(),
        json!({
            "anthropic": {"type": "api_key", "key": key},
            "openai": {"type": "api_key", "key": "sk-openai-test"},
        })
    );

    let out = vault.run(&["auth", "--status", "--json"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(key));
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        rows,
        json!([
            {"provider": "anthropic", "type": "api_key", "agents": ["claude"]},
            {"provider": "openai", "type": "api_key", "agents": ["codex"]},
        ])
    );

    let out = vault.run(&["auth", "--logout", "claude"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        vault.stored(),
        json!({"openai": {"type": "api_key", "key": "sk-openai-test"}})
    );

    // Entries the vault does not route, and unknown names, are refused before anything opens.
    let out = vault.run(&["auth", "copilot", "--api-key-file", "-"], "x\n");
    assert!(text(&out).1.contains("no vault route"), "{}", text(&out).1);
    let out = vault.run(&["auth", "nope", "--api-key-file", "-"], "x\n");
    assert!(text(&out).1.contains("no roster entry"), "{}", text(&out).1);
}

#[test]
fn a_wrong_passphrase_a_missing_vault_and_an_old_schema_change_nothing() {
    let Some(vault) = Vault::new() else { return };
    let out = vault.run(&["auth", "codex", "--api-key-file", "-"], "sk-1\n");
    assert!(out.status.success(), "{}", text(&out).1);
    let before = vault.stored();

    vault.write_config("printf not-the-passphrase");
    let out = vault.run(&["auth", "codex", "--api-key-file", "-"], "sk-2\n");
    assert!(!out.status.success());
    let stderr = text(&out).1;
    assert!(stderr.contains("does not open the vault"), "{stderr}");
    assert!(!stderr.contains("not-the-passphrase"), "{stderr}");
    vault.write_config(&format!("printf {PASSPHRASE}"));
    assert_eq!(vault.stored(), before);

    let mut missing = Command::new(BIN);
    vault.env(&mut missing);
    let empty = vault.dir.path().join("empty");
    let out = missing
        .args(["auth", "--status"])
        .env("TEROK_VAULT_DIR", &empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no vault at"), "{}", text(&out).1);
    assert!(!empty.join("credentials.db").exists(), "nothing is created");

    // terok-sandbox's own sqlcipher3 marks the database as schema 3.
    vault.py("import sqlcipher3\n\
         c = sqlcipher3.connect(str(SandboxConfig().db_path))\n\
         c.execute(\"PRAGMA key = 'vault-test-passphrase'\")\n\
         c.execute('PRAGMA cipher_compatibility = 4')\n\
         c.execute('PRAGMA user_version = 3')\n\
         c.commit(); c.close()");
    let out = vault.run(&["auth", "codex", "--api-key-file", "-"], "sk-3\n");
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("schema version 3"),
        "{}",
        text(&out).1
    );
}

/// A request to the broker; the status code.
fn request(port: u16, path: &str, header: Option<(&str, &str)>) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let auth = header
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tokens_minted_here_are_swapped_by_the_real_broker_until_revoked() {
    let Some(vault) = Vault::new() else { return };
    let out = vault.run(
        &["auth", "claude", "--api-key-file", "-"],
        "sk-ant-real-key\n",
    );
    assert!(out.status.success(), "{}", text(&out).1);

    // routes.json as `vault routes` writes it, the anthropic upstream pointed at the mock.
    let out = vault.run(&["vault", "routes"], "");
    assert!(out.status.success(), "{}", text(&out).1);
    let routes_path = vault.vault_dir().join("routes.json");
    let mut routes: Value =
        serde_json::from_str(&std::fs::read_to_string(&routes_path).unwrap()).unwrap();
    let (upstream, seen) = mock_upstream();
    routes["anthropic"]["upstream"] = json!(format!("http://127.0.0.1:{upstream}"));
    std::fs::write(&routes_path, routes.to_string()).unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sidecar = vault.dir.path().join("sidecar.json");
    std::fs::write(
        &sidecar,
        json!({
            "container_name": "terok-vault-test",
            "ipc_mode": "tcp",
            "tcp_port": port,
            "db_path": vault.vault_dir().join("credentials.db"),
            "runtime_dir": vault.dir.path().join("run"),
            "routes_path": routes_path,
            "credentials_use_keyring": false,
            "credentials_passphrase_command": format!("printf {PASSPHRASE}"),
        })
        .to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(&vault.python);
    cmd.args([
        "-m",
        "terok_sandbox",
        "supervise-child",
        "vault",
        "0123456789abcdef0123",
    ])
    .arg(&sidecar)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    vault.env(&mut cmd);
    let _broker = Broker(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err()
        || request(port, "/-/health", None) != 200
    {
        assert!(Instant::now() < deadline, "the broker did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }

    let db = vault.open();
    let token = db
        .create_token("standalone", "terok-vault-test", "default", "anthropic")
        .unwrap();
    assert_eq!(
        request(port, "/v1/models", Some(("x-api-key", &token))),
        200
    );
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert!(headers[0].starts_with("GET /v1/models"), "{headers:?}");
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("x-api-key: sk-ant-real-key")),
        "{headers:?}"
    );
    assert!(!headers.iter().any(|h| h.contains(&token)), "{headers:?}");

    assert_eq!(
        db.revoke_tokens("standalone", "terok-vault-test").unwrap(),
        1
    );
    assert_eq!(
        request(port, "/v1/models", Some(("x-api-key", &token))),
        401
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "nothing more reached the upstream"
    );
}

//! The vault's credential database: terok-sandbox's `credentials.db`, opened from Rust.
//!
//! The file is SQLCipher 4 (a passphrase, SQLCipher's own key derivation, `cipher_compatibility
//! = 4`), in WAL mode. terok-sandbox creates and migrates its schema; this module only reads and
//! writes rows, and refuses a schema version it was not written for rather than guess. Secrets
//! never reach a log or an error message: errors name the file and what failed, not the data.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

use super::passphrase::{resolve, PassphraseError, Sources};
use crate::launcher::paths::{HostPaths, LayeredConfig};

/// The schema version (`PRAGMA user_version`) of terok-sandbox 0.6.0 that this module speaks.
pub const SUPPORTED_SCHEMA: i64 = 4;
/// The file name of the database inside the vault directory.
pub const DB_FILE: &str = "credentials.db";
/// The credential set used when none is named.
pub const DEFAULT_SET: &str = "default";
/// Phantom tokens: this prefix and 32 lowercase hex digits.
pub const TOKEN_PREFIX: &str = "terok-p-";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "no vault at {}: terok-sandbox creates it (`terok-sandbox vault unlock` or its setup); \
         set TEROK_VAULT_DIR if it lives elsewhere",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("the passphrase does not open the vault at {}", .0.display())]
    WrongPassphrase(PathBuf),
    #[error(
        "the vault at {} has schema version {found}; this terok-executor supports version \
         {SUPPORTED_SCHEMA} (terok-sandbox 0.6). Upgrade the one that is older; the schema is \
         terok-sandbox's to migrate",
        path.display()
    )]
    Schema { path: PathBuf, found: i64 },
    #[error("the stored credential for {provider} in set {set} is not valid JSON")]
    BadRecord { set: String, provider: String },
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    #[error("cannot read a random token: {0}")]
    Random(std::io::Error),
    #[error("vault database {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// An open credential database.
pub struct CredentialDb {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for CredentialDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialDb")
            .field("path", &self.path)
            .finish()
    }
}

/// One phantom token's row (`proxy_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub scope: String,
    pub subject: String,
    pub credential_set: String,
    pub provider: String,
}

impl CredentialDb {
    /// The vault these host paths name, opened with the first passphrase tier that has one.
    pub fn open_host(paths: &HostPaths) -> Result<CredentialDb, DbError> {
        let db = paths.vault_dir.join(DB_FILE);
        if !db.is_file() {
            return Err(DbError::Missing(db));
        }
        let config = LayeredConfig::load(&paths.config_files);
        let (passphrase, tier) = resolve(&db, &Sources::from_env(&config))?;
        tracing::debug!(tier = tier.as_str(), "vault passphrase found");
        CredentialDb::open(&db, &passphrase)
    }

    /// Opens the database at `path` with `passphrase`. The file must exist (this never creates a
    /// vault), the passphrase must open it and its schema must be [`SUPPORTED_SCHEMA`].
    pub fn open(path: &Path, passphrase: &str) -> Result<CredentialDb, DbError> {
        if !path.is_file() {
            return Err(DbError::Missing(path.to_owned()));
        }
        if passphrase.is_empty() {
            // An empty key would open (and so create) a plain, unencrypted database.
            return Err(DbError::WrongPassphrase(path.to_owned()));
        }
        let sql = |source| DbError::Sql {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.pragma_update(None, "key", passphrase).map_err(sql)?;
        conn.pragma_update(None, "cipher_compatibility", 4)
            .map_err(sql)?;
        // The first read decrypts page 1: a wrong key fails here ("file is not a database").
        let version: i64 = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
            Ok(v) => v,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::NotADatabase =>
            {
                return Err(DbError::WrongPassphrase(path.to_owned()));
            }
            Err(e) => return Err(sql(e)),
        };
        if version != SUPPORTED_SCHEMA {
            return Err(DbError::Schema {
                path: path.to_owned(),
                found: version,
            });
        }
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        Ok(CredentialDb {
            conn,
            path: path.to_owned(),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> DbError {
        DbError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// The providers with a credential in `set`, sorted.
    pub fn list_credentials(&self, set: &str) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT provider FROM credentials WHERE credential_set = ? ORDER BY provider")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([set], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The credential sets that hold anything, sorted.
    pub fn list_sets(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT credential_set FROM credentials ORDER BY credential_set")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The stored credential of `provider` in `set`.
    pub fn load_credential(&self, set: &str, provider: &str) -> Result<Option<Value>, DbError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT data FROM credentials WHERE credential_set = ? AND provider = ?",
                [set, provider],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|_| DbError::BadRecord {
                set: set.to_owned(),
                provider: provider.to_owned(),
            })
        })
        .transpose()
    }

    /// Stores (or replaces) the credential of `provider` in `set`.
    pub fn store_credential(&self, set: &str, provider: &str, data: &Value) -> Result<(), DbError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO credentials (credential_set, provider, data) VALUES (?, ?, ?)",
                params![set, provider, data.to_string()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Removes the credential of `provider` in `set`; whether there was one.
    pub fn delete_credential(&self, set: &str, provider: &str) -> Result<bool, DbError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM credentials WHERE credential_set = ? AND provider = ?",
                [set, provider],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Mints a phantom token that the broker swaps for `provider`'s credential in `set`.
    pub fn create_token(
        &self,
        scope: &str,
        subject: &str,
        set: &str,
        provider: &str,
    ) -> Result<String, DbError> {
        let token = new_token()?;
        self.conn
            .execute(
                "INSERT INTO proxy_tokens (token, scope, subject, credential_set, provider) \
                 VALUES (?, ?, ?, ?, ?)",
                params![token, scope, subject, set, provider],
            )
            .map_err(|e| self.sql(e))?;
        Ok(token)
    }

    /// The row of `token`, if it is live.
    pub fn lookup_token(&self, token: &str) -> Result<Option<TokenRow>, DbError> {
        self.conn
            .query_row(
                "SELECT scope, subject, credential_set, provider FROM proxy_tokens WHERE token = ?",
                [token],
                |r| {
                    Ok(TokenRow {
                        scope: r.get(0)?,
                        subject: r.get(1)?,
                        credential_set: r.get(2)?,
                        provider: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Revokes every token of `subject` in `scope`; how many there were.
    pub fn revoke_tokens(&self, scope: &str, subject: &str) -> Result<usize, DbError> {
        self.conn
            .execute(
                "DELETE FROM proxy_tokens WHERE scope = ? AND subject = ?",
                [scope, subject],
            )
            .map_err(|e| self.sql(e))
    }
}

/// `terok-p-` and 32 hex digits from the kernel's CSPRNG.
fn new_token() -> Result<String, DbError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(DbError::Random)?;
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 32);
    token.push_str(TOKEN_PREFIX);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    Ok(token)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A database with terok-sandbox's tables, made the way SQLCipher makes one.
    pub(crate) fn sandbox_like_db(dir: &Path, passphrase: &str, version: i64) -> PathBuf {
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "key", passphrase).unwrap();
        conn.pragma_update(None, "cipher_compatibility", 4).unwrap();
        conn.execute_batch(
            "CREATE TABLE credentials (credential_set TEXT NOT NULL, provider TEXT NOT NULL, \
               data TEXT NOT NULL, PRIMARY KEY (credential_set, provider));
             CREATE TABLE proxy_tokens (token TEXT PRIMARY KEY, scope TEXT NOT NULL, \
               subject TEXT NOT NULL, credential_set TEXT NOT NULL, provider TEXT NOT NULL);",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
        path
    }

    #[test]
    fn credentials_round_trip_and_tokens_are_minted_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = sandbox_like_db(dir.path(), "pass", SUPPORTED_SCHEMA);
        let db = CredentialDb::open(&path, "pass").unwrap();
        let key = serde_json::json!({"type": "api_key", "key": "sk-secret"});
        db.store_credential("default", "anthropic", &key).unwrap();
        db.store_credential("work", "openai", &key).unwrap();
        assert_eq!(db.list_credentials("default").unwrap(), ["anthropic"]);
        assert_eq!(db.list_sets().unwrap(), ["default", "work"]);
        assert_eq!(
            db.load_credential("default", "anthropic").unwrap(),
            Some(key)
        );
        let token = db
            .create_token("standalone", "ctr", "default", "anthropic")
            .unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 32);
        assert!(token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        let other = db
            .create_token("standalone", "ctr", "default", "anthropic")
            .unwrap();
        assert_ne!(token, other);
        assert_eq!(
            db.lookup_token(&token).unwrap().unwrap().provider,
            "anthropic"
        );
        assert_eq!(db.revoke_tokens("standalone", "ctr").unwrap(), 2);
        assert_eq!(db.lookup_token(&token).unwrap(), None);
        assert!(db.delete_credential("default", "anthropic").unwrap());
        assert!(!db.delete_credential("default", "anthropic").unwrap());
    }

    #[test]
    fn wrong_passphrase_missing_file_and_other_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sandbox_like_db(dir.path(), "pass", SUPPORTED_SCHEMA);
        let err = CredentialDb::open(&path, "wrong").unwrap_err();
        assert!(matches!(err, DbError::WrongPassphrase(_)), "{err}");
        assert!(!err.to_string().contains("wrong"));
        assert!(matches!(
            CredentialDb::open(&path, "").unwrap_err(),
            DbError::WrongPassphrase(_)
        ));
        let missing = CredentialDb::open(&dir.path().join("nope.db"), "pass").unwrap_err();
        assert!(matches!(missing, DbError::Missing(_)));
        assert!(!dir.path().join("nope.db").exists(), "nothing is created");

        let old = tempfile::tempdir().unwrap();
        let path = sandbox_like_db(old.path(), "pass", 3);
        let err = CredentialDb::open(&path, "pass").unwrap_err();
        assert!(matches!(err, DbError::Schema { found: 3, .. }), "{err}");
        assert!(err.to_string().contains("version 3"));
    }
}

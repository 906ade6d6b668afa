//! Where a container reaches the vault, in each transport.
//!
//! Socket mode (the default) mounts the container's own broker directory at `/run/terok`, whose
//! vault socket is `/run/terok/vault/vault.sock` (terok-sandbox's layout, container protocol 3),
//! and runs an in-container loopback bridge on port 9419
//! for HTTP-only clients. TCP mode points clients at the host's token broker
//! port and runs a local socket bridge for clients that only speak
//! HTTP-over-UNIX. The mode and port come from the shared `config.yml`
//! (`services.mode`, `vault.port`).

use crate::launcher::paths::LayeredConfig;

/// The in-container loopback port that forwards to the vault socket.
pub const LOOPBACK_VAULT_PORT: u16 = 9419;
/// Where the container's broker directory is mounted in socket mode.
pub const CONTAINER_RUNTIME_DIR: &str = "/run/terok";
/// The vault socket as seen inside the container in socket mode.
pub const CONTAINER_VAULT_SOCKET: &str = "/run/terok/vault/vault.sock";
/// The in-container socket bridge to the TCP broker in TCP mode.
pub const LOOPBACK_BRIDGE_SOCKET: &str = "/tmp/terok-vault.sock";

/// Transport between containers and host services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServicesMode {
    Socket,
    Tcp,
}

/// Container-side addresses of the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultLocation {
    /// Base URL for HTTP clients (never empty); substituted for `{vault_url}`.
    pub url: String,
    /// Unix socket path for HTTP-over-UNIX clients; substituted for `{vault_socket}`.
    pub socket: String,
}

impl VaultLocation {
    /// The socket-mode addresses.
    pub fn socket_mode() -> Self {
        VaultLocation {
            url: format!("http://localhost:{LOOPBACK_VAULT_PORT}"),
            socket: CONTAINER_VAULT_SOCKET.into(),
        }
    }

    /// The TCP-mode addresses for a broker on host port `port`.
    pub fn tcp_mode(port: u16) -> Self {
        VaultLocation {
            url: format!("http://host.containers.internal:{port}"),
            socket: LOOPBACK_BRIDGE_SOCKET.into(),
        }
    }

    /// Replaces `{vault_url}` and `{vault_socket}` in `text`.
    pub fn substitute(&self, text: &str) -> String {
        text.replace("{vault_url}", &self.url)
            .replace("{vault_socket}", &self.socket)
    }
}

/// Why the vault location could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("services.mode is tcp but vault.port is not set in config.yml")]
    TcpPortMissing,
    #[error("vault.port in config.yml is not a valid port: '{0}'")]
    InvalidPort(String),
}

/// The configured transport; an unknown value falls back to socket mode with a warning.
pub fn services_mode(config: &LayeredConfig) -> (ServicesMode, Option<String>) {
    match config.string("services", "mode").as_deref() {
        None | Some("socket") => (ServicesMode::Socket, None),
        Some("tcp") => (ServicesMode::Tcp, None),
        Some(other) => (
            ServicesMode::Socket,
            Some(format!(
                "warning: invalid services.mode '{other}'; falling back to 'socket'"
            )),
        ),
    }
}

/// Resolves the vault's container-side addresses from the shared config.
pub fn resolve_vault_location(config: &LayeredConfig) -> Result<VaultLocation, LocationError> {
    match services_mode(config).0 {
        ServicesMode::Socket => Ok(VaultLocation::socket_mode()),
        ServicesMode::Tcp => {
            let raw = config
                .string("vault", "port")
                .ok_or(LocationError::TcpPortMissing)?;
            let port: u16 = raw
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or(LocationError::InvalidPort(raw))?;
            Ok(VaultLocation::tcp_mode(port))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> LayeredConfig {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(&file, text).unwrap();
        LayeredConfig::load(&[file])
    }

    #[test]
    fn socket_mode_is_the_default() {
        let loc = resolve_vault_location(&config("")).unwrap();
        assert_eq!(
            loc,
            VaultLocation {
                url: "http://localhost:9419".into(),
                socket: "/run/terok/vault/vault.sock".into()
            }
        );
    }

    #[test]
    fn tcp_mode_uses_the_configured_port() {
        let loc = resolve_vault_location(&config("services: {mode: tcp}\nvault: {port: 18731}\n"))
            .unwrap();
        assert_eq!(loc.url, "http://host.containers.internal:18731");
        assert_eq!(loc.socket, "/tmp/terok-vault.sock");
    }

    #[test]
    fn tcp_mode_without_port_is_an_error() {
        assert!(matches!(
            resolve_vault_location(&config("services: {mode: tcp}\n")),
            Err(LocationError::TcpPortMissing)
        ));
        assert!(matches!(
            resolve_vault_location(&config("services: {mode: tcp}\nvault: {port: 99999}\n")),
            Err(LocationError::InvalidPort(_))
        ));
    }

    #[test]
    fn unknown_mode_warns_and_uses_socket() {
        let (mode, warning) = services_mode(&config("services: {mode: soket}\n"));
        assert_eq!(mode, ServicesMode::Socket);
        assert!(warning.unwrap().contains("soket"));
    }

    #[test]
    fn substitution_replaces_both_tokens() {
        let loc = VaultLocation::tcp_mode(1);
        assert_eq!(
            loc.substitute("{vault_url}/v1 {vault_socket}"),
            "http://host.containers.internal:1/v1 /tmp/terok-vault.sock"
        );
    }
}

//! ACP method names the proxy branches on.
//!
//! Everything the proxy does not recognise is kept as [`Method::Other`] and forwarded as is.

use std::fmt;

macro_rules! methods {
    ($($variant:ident => $name:literal,)*) => {
        /// A JSON-RPC method of ACP v1, or any other name.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Method {
            $($variant,)*
            Other(Box<str>),
        }

        impl Method {
            pub fn from_name(name: &str) -> Method {
                match name {
                    $($name => Method::$variant,)*
                    other => Method::Other(other.into()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(Method::$variant => $name,)*
                    Method::Other(name) => name,
                }
            }
        }
    };
}

methods! {
    Initialize => "initialize",
    Authenticate => "authenticate",
    Logout => "logout",
    SessionNew => "session/new",
    SessionLoad => "session/load",
    SessionList => "session/list",
    SessionResume => "session/resume",
    SessionClose => "session/close",
    SessionDelete => "session/delete",
    SessionFork => "session/fork",
    SessionSetMode => "session/set_mode",
    SessionSetConfigOption => "session/set_config_option",
    SessionSetModel => "session/set_model",
    SessionPrompt => "session/prompt",
    SessionCancel => "session/cancel",
    SessionUpdate => "session/update",
    RequestPermission => "session/request_permission",
    FsReadTextFile => "fs/read_text_file",
    FsWriteTextFile => "fs/write_text_file",
    TerminalCreate => "terminal/create",
    CancelRequest => "$/cancel_request",
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_round_trip() {
        for name in [
            "initialize",
            "session/update",
            "$/cancel_request",
            "session/set_model",
        ] {
            assert_eq!(Method::from_name(name).as_str(), name);
            assert!(!matches!(Method::from_name(name), Method::Other(_)));
        }
    }

    #[test]
    fn unknown_names_are_kept_verbatim() {
        assert_eq!(
            Method::from_name("_zed.dev/x"),
            Method::Other("_zed.dev/x".into())
        );
    }
}

//! Path translation applied to ACP payloads, in place.
//!
//! Each entry point takes the method and the `params` (or `result`) the proxy has already
//! parsed and edits only the fields that carry paths; unknown fields, `_meta` and values of an
//! unexpected type are left exactly as they were, and nothing here panics on odd input.
//!
//! - Client → agent ([`PathMap::rewrite_client_to_agent`]): host paths become container paths.
//!   What cannot be mapped is never an error, since the client is trusted: it is kept or dropped
//!   and a warning is returned for the log.
//! - Agent → client ([`PathMap::rewrite_agent_to_client`]): container paths become host paths.
//!   A request that would make the editor read, write or run somewhere outside every mapped
//!   directory is refused with [`PathError`]; a notification that merely mentions such a path is
//!   passed on unchanged.
//! - Agent results ([`PathMap::rewrite_agent_result`]): paths in answers to client requests.

use serde_json::Value;

use super::{PathMap, Side};
use crate::acp::message::INVALID_PARAMS;

/// Why an agent's request is refused instead of forwarded to the editor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {path:?} is outside the workspace and every mounted directory")]
    OutsideRoots { path: String },
}

impl PathError {
    /// The JSON-RPC error code the agent is answered with.
    pub fn code(&self) -> i64 {
        INVALID_PARAMS
    }
}

/// The kind of a content block that may carry a URI.
enum UriBlock {
    ResourceLink,
    Resource,
}

impl PathMap {
    /// Moves host paths in a client request or notification into the container.
    ///
    /// - `session/new`, `session/load`, `session/resume`, `session/fork`, `session/list`:
    ///   `cwd` is mapped, or kept with a warning when it maps nowhere; `additionalDirectories`
    ///   entries that map nowhere are dropped with a warning; stdio MCP servers (no `type`, or
    ///   `"stdio"`) whose absolute `command` maps nowhere are dropped with a warning, the rest get
    ///   their `command` mapped; a bare command name (`npx`) and http/sse servers are kept.
    /// - `session/prompt`: `file:` URIs of `resource_link` and `resource` blocks are mapped, or
    ///   kept with a warning.
    ///
    /// Returns the warnings, in payload order.
    pub fn rewrite_client_to_agent(&self, method: &str, params: &mut Value) -> Vec<String> {
        let mut warnings = Vec::new();
        match method {
            "session/new" | "session/load" | "session/resume" | "session/fork" | "session/list" => {
                self.session_setup(params, &mut warnings);
            }
            "session/prompt" => {
                if let Some(Value::Array(blocks)) = params.get_mut("prompt") {
                    for block in blocks {
                        if let Some(uri) = block_uri(block) {
                            if !self.map_uri_in_place(uri, Side::Container) {
                                warnings.push(format!(
                                    "prompt resource {uri:?} is not under any mapped directory; passed on unchanged"
                                ));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        warnings
    }

    /// Moves container paths in an agent request or notification to the host.
    ///
    /// - `fs/read_text_file`, `fs/write_text_file`: `path`; `terminal/create`: `cwd` (absent or
    ///   null is fine). A path outside every mapped directory, or not absolute, is an error: the
    ///   request must be answered with it and never reach the editor.
    /// - `session/update` (`tool_call`, `tool_call_update`, the three message chunks) and
    ///   `session/request_permission` (its `toolCall`): `locations[].path`, diff `path`, and
    ///   `file:` URIs of content blocks, each mapped where it can be and otherwise kept.
    pub fn rewrite_agent_to_client(
        &self,
        method: &str,
        params: &mut Value,
    ) -> Result<(), PathError> {
        match method {
            "fs/read_text_file" | "fs/write_text_file" => self.require_host(params, "path"),
            "terminal/create" => self.require_host(params, "cwd"),
            "session/update" => {
                if let Some(update) = params.get_mut("update") {
                    self.session_update(update);
                }
                Ok(())
            }
            "session/request_permission" => {
                if let Some(tool_call) = params.get_mut("toolCall") {
                    self.tool_call(tool_call);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Moves container paths in an agent's answer to a client request to the host:
    /// `session/list` `sessions[].cwd` and `sessions[].additionalDirectories[]`, where they map.
    pub fn rewrite_agent_result(&self, method: &str, result: &mut Value) {
        if method != "session/list" {
            return;
        }
        let Some(Value::Array(sessions)) = result.get_mut("sessions") else {
            return;
        };
        for session in sessions {
            if let Some(Value::String(cwd)) = session.get_mut("cwd") {
                self.map_in_place(cwd, Side::Host);
            }
            if let Some(Value::Array(dirs)) = session.get_mut("additionalDirectories") {
                for dir in dirs {
                    if let Value::String(dir) = dir {
                        self.map_in_place(dir, Side::Host);
                    }
                }
            }
        }
    }

    /// `cwd`, `additionalDirectories` and `mcpServers` of the session set-up requests.
    fn session_setup(&self, params: &mut Value, warnings: &mut Vec<String>) {
        if let Some(Value::String(cwd)) = params.get_mut("cwd") {
            if !self.map_in_place(cwd, Side::Container) {
                warnings.push(format!(
                    "cwd {cwd:?} is not under any mapped directory; passed on unchanged"
                ));
            }
        }
        if let Some(Value::Array(dirs)) = params.get_mut("additionalDirectories") {
            dirs.retain_mut(|dir| {
                let Value::String(dir) = dir else { return true };
                let kept = self.map_in_place(dir, Side::Container);
                if !kept {
                    warnings.push(format!(
                        "additional directory {dir:?} is not under any mapped directory; dropped"
                    ));
                }
                kept
            });
        }
        if let Some(Value::Array(servers)) = params.get_mut("mcpServers") {
            servers.retain_mut(|server| self.mcp_server(server, warnings));
        }
    }

    /// Maps a stdio MCP server's absolute `command`; false when it should be dropped.
    fn mcp_server(&self, server: &mut Value, warnings: &mut Vec<String>) -> bool {
        let stdio = match server.get("type") {
            None | Some(Value::Null) => server.is_object(),
            Some(Value::String(kind)) => kind == "stdio",
            Some(_) => false,
        };
        if !stdio {
            return true;
        }
        let name = server
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let Some(Value::String(command)) = server.get_mut("command") else {
            return true;
        };
        if !command.starts_with('/') || self.map_in_place(command, Side::Container) {
            return true;
        }
        warnings.push(format!(
            "mcp server {name:?} dropped: its command {command:?} is not under any mapped directory"
        ));
        false
    }

    /// The `update` of a `session/update` notification.
    fn session_update(&self, update: &mut Value) {
        let kind = update.get("sessionUpdate").and_then(Value::as_str);
        let is_tool_call = matches!(kind, Some("tool_call" | "tool_call_update"));
        let is_chunk = matches!(
            kind,
            Some("agent_message_chunk" | "user_message_chunk" | "agent_thought_chunk")
        );
        if is_tool_call {
            self.tool_call(update);
        } else if is_chunk {
            if let Some(uri) = update.get_mut("content").and_then(block_uri) {
                self.map_uri_in_place(uri, Side::Host);
            }
        }
    }

    /// A `ToolCall` or `ToolCallUpdate`: `locations[].path`, diff `path`, content block URIs.
    fn tool_call(&self, tool_call: &mut Value) {
        if let Some(Value::Array(locations)) = tool_call.get_mut("locations") {
            for location in locations {
                if let Some(Value::String(path)) = location.get_mut("path") {
                    self.map_in_place(path, Side::Host);
                }
            }
        }
        if let Some(Value::Array(contents)) = tool_call.get_mut("content") {
            for content in contents {
                match content.get("type").and_then(Value::as_str) {
                    Some("diff") => {
                        if let Some(Value::String(path)) = content.get_mut("path") {
                            self.map_in_place(path, Side::Host);
                        }
                    }
                    Some("content") => {
                        if let Some(uri) = content.get_mut("content").and_then(block_uri) {
                            self.map_uri_in_place(uri, Side::Host);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Maps `params[key]` to the host; an error if it is a string that maps nowhere.
    fn require_host(&self, params: &mut Value, key: &str) -> Result<(), PathError> {
        let Some(Value::String(path)) = params.get_mut(key) else {
            return Ok(());
        };
        if self.map_in_place(path, Side::Host) {
            Ok(())
        } else {
            Err(PathError::OutsideRoots { path: path.clone() })
        }
    }

    /// Replaces `path` with its image on side `to`; false, leaving it alone, when it has none.
    fn map_in_place(&self, path: &mut String, to: Side) -> bool {
        match self.map(path, to) {
            Some(mapped) => {
                *path = mapped;
                true
            }
            None => false,
        }
    }

    /// Replaces a URI with its image on side `to`; false, leaving it alone, when it has none.
    fn map_uri_in_place(&self, uri: &mut String, to: Side) -> bool {
        match self.map_uri(uri, to) {
            Some(mapped) => {
                *uri = mapped;
                true
            }
            None => false,
        }
    }
}

/// The URI slot of a `resource_link` or embedded `resource` content block.
fn block_uri(block: &mut Value) -> Option<&mut String> {
    let kind = match block.get("type").and_then(Value::as_str) {
        Some("resource_link") => UriBlock::ResourceLink,
        Some("resource") => UriBlock::Resource,
        _ => return None,
    };
    let uri = match kind {
        UriBlock::ResourceLink => block.get_mut("uri")?,
        UriBlock::Resource => block.get_mut("resource")?.get_mut("uri")?,
    };
    match uri {
        Value::String(uri) => Some(uri),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! The protocol side of the fixture: process-wide state and the handlers of
//! the client's requests and notifications.
//!
//! Requests are answered on the dispatcher thread, except `session/prompt`,
//! which runs on its own thread so that cancels and client answers keep
//! flowing while it streams.

use crate::args::Config;
use crate::client::ClientRequests;
use crate::models::{config_options, legacy_models, LEGACY_MODES, MODES};
use crate::output::{error_frame, response_frame, session_update_frame, Output, RpcError};
use crate::prompt;
use crate::rpc::Incoming;
use crate::session::{lock, Session};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The state shared by the dispatcher and the prompt threads.
pub struct Agent {
    /// The behaviour chosen on the command line.
    pub cfg: Config,
    /// The shared stdout.
    pub out: Output,
    /// Outstanding agent-to-client requests.
    pub client: ClientRequests,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    next_session: AtomicU64,
    authenticated: AtomicBool,
    input_closed: AtomicBool,
}

/// The outcome of handling one request on the dispatcher thread.
enum Handled {
    /// Answer now.
    Reply(Result<Value, RpcError>),
    /// A prompt thread owns the answer.
    Spawned(JoinHandle<()>),
    /// Never answer (`--hang-on`).
    Silent,
}

impl Agent {
    /// Creates the agent for a configuration.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            out: Output::new(),
            client: ClientRequests::default(),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            authenticated: AtomicBool::new(false),
            input_closed: AtomicBool::new(false),
        }
    }

    /// Tells whether stdin has been closed (and end of file is not ignored).
    pub fn input_closed(&self) -> bool {
        self.input_closed.load(Ordering::SeqCst)
    }

    /// Records that stdin is closed: waiting prompts can no longer get answers.
    pub fn close_input(&self) {
        self.input_closed.store(true, Ordering::SeqCst);
        self.client.close();
    }

    /// Handles one message; returns the prompt thread it started, if any.
    pub fn dispatch(self: &Arc<Self>, message: Incoming) -> Option<JoinHandle<()>> {
        match message {
            Incoming::Request {
                raw_id,
                method,
                params,
            } => match self.handle_request(&raw_id, &method, params) {
                Handled::Reply(Ok(result)) => {
                    self.out.send(&response_frame(&raw_id, &result));
                    if method == "session/new" && self.cfg.announce_commands {
                        self.announce_commands(&result);
                    }
                }
                Handled::Reply(Err(error)) => {
                    self.out.send(&error_frame(&raw_id, &error));
                }
                Handled::Spawned(handle) => return Some(handle),
                Handled::Silent => {}
            },
            Incoming::Notification { method, params } => self.handle_notification(&method, &params),
            Incoming::Response { id, outcome } => self.client.resolve(&id, outcome),
        }
        None
    }

    /// What the real adapters send after `session/new`: the commands the session takes, named
    /// after the session so that a client can tell whose they are.
    fn announce_commands(&self, opened: &Value) {
        let Some(sid) = opened["sessionId"].as_str() else {
            return;
        };
        let update = json!({
            "sessionUpdate": "available_commands_update",
            "availableCommands": [
                {"name": format!("about-{sid}"), "description": "Says which session this is"},
            ],
        });
        self.out.send(&session_update_frame(sid, update));
    }

    fn handle_request(self: &Arc<Self>, raw_id: &str, method: &str, params: Value) -> Handled {
        if self.cfg.hang_on.iter().any(|m| m == method) {
            eprintln!(
                "fixture {}: not answering {method} (id {raw_id})",
                self.cfg.name
            );
            return Handled::Silent;
        }
        let reply = match method {
            "initialize" => self.initialize(&params),
            "authenticate" => self.authenticate(&params),
            "logout" => self.logout(),
            "session/new" => self.new_session(&params),
            "session/set_config_option" => self.set_config_option(&params),
            "session/set_model" => self.set_model(&params),
            "session/set_mode" => self.set_mode(&params),
            "session/close" => self.close_session(&params),
            "session/list" => self.list_sessions(&params),
            "session/load" => self.reopen_session(&params, true),
            "session/resume" => self.reopen_session(&params, false),
            "session/delete" => self.delete_session(&params),
            "session/prompt" => return self.start_prompt(raw_id, &params),
            "_fixture/echo" => Ok(params),
            _ => Err(RpcError::method_not_found(method)),
        };
        Handled::Reply(reply)
    }

    fn handle_notification(&self, method: &str, params: &Value) {
        if method != "session/cancel" {
            return;
        }
        match self.session(params) {
            Ok(session) => session.cancel.cancel(),
            Err(err) => eprintln!(
                "fixture {}: ignoring cancel: {}",
                self.cfg.name, err.message
            ),
        }
    }

    /// Waits for `--delay-ms`, simulating a slow start.
    fn delay(&self) {
        if !self.cfg.delay.is_zero() {
            std::thread::sleep(self.cfg.delay);
        }
    }

    fn initialize(&self, params: &Value) -> Result<Value, RpcError> {
        self.delay();
        if self.cfg.fail_initialize {
            return Err(RpcError::new(-32603, "fixture initialize failure"));
        }
        let mut auth_methods = Vec::new();
        if self.cfg.auth_meta {
            auth_methods.push(json!({"id": "api-key", "name": "API key", "description": "fixture key", "_meta": {"api-key": {"provider": "fixture"}}}));
        } else if self.cfg.auth_required {
            auth_methods
                .push(json!({"id": "login", "name": "Log in", "description": "fixture login"}));
        }
        if self.cfg.capable_auth {
            let auth = params.pointer("/clientCapabilities/auth");
            let on = |path: &str| auth.and_then(|a| a.pointer(path)) == Some(&Value::Bool(true));
            if on("/terminal") {
                auth_methods.push(json!({"id": "tty-login", "name": "Log in in a terminal", "type": "terminal", "args": ["--login"]}));
            }
            if on("/_meta/gateway") {
                auth_methods.push(json!({"id": "gateway", "name": "Custom gateway", "_meta": {"gateway": {"protocol": "fixture"}}}));
            }
        }
        Ok(json!({
            "protocolVersion": 1,
            "agentCapabilities": self.cfg.caps,
            "authMethods": auth_methods,
            "agentInfo": {"name": self.cfg.name, "title": self.cfg.name, "version": "0.1.0"},
        }))
    }

    fn authenticate(&self, params: &Value) -> Result<Value, RpcError> {
        let method_id = params
            .get("methodId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.cfg.auth_meta && method_id == "api-key" {
            // Like codex-acp: the key comes only in `_meta`, and only this process keeps it.
            let key = params
                .pointer("/_meta/api-key/apiKey")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if key.is_empty() {
                return Err(RpcError::new(
                    -32603,
                    "FIXTURE_API_KEY is not set and _meta.api-key.apiKey is missing",
                ));
            }
            self.authenticated.store(true, Ordering::SeqCst);
            return Ok(json!({}));
        }
        if self.cfg.auth_required && !self.cfg.auth_meta && method_id == "login" {
            self.authenticated.store(true, Ordering::SeqCst);
            if let Some(path) = &self.cfg.auth_file {
                std::fs::write(path, "logged in\n")
                    .map_err(|e| RpcError::new(-32603, format!("cannot store the login: {e}")))?;
            }
            Ok(json!({}))
        } else {
            Err(RpcError::invalid_params(format!(
                "unknown auth method {method_id:?}"
            )))
        }
    }

    /// `logout`: the login of this process and the remembered one are forgotten.
    fn logout(&self) -> Result<Value, RpcError> {
        self.authenticated.store(false, Ordering::SeqCst);
        if let Some(path) = &self.cfg.auth_file {
            let _ = std::fs::remove_file(path);
        }
        Ok(json!({}))
    }

    fn new_session(&self, params: &Value) -> Result<Value, RpcError> {
        self.delay();
        let stored = self
            .cfg
            .auth_file
            .as_ref()
            .is_some_and(|p| std::path::Path::new(p).exists())
            || self
                .cfg
                .auth_env
                .as_ref()
                .is_some_and(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        if self.cfg.auth_required && !stored && !self.authenticated.load(Ordering::SeqCst) {
            return Err(RpcError::new(-32000, "Authentication required"));
        }
        let cwd = params
            .get("cwd")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("session/new needs a cwd string"))?;
        let n = self.next_session.fetch_add(1, Ordering::SeqCst);
        let id = match &self.cfg.store {
            // Stored sessions outlive the process: their ids must not repeat across processes.
            Some(_) => format!("{}{}-{n}", self.cfg.session_prefix, std::process::id()),
            None => format!("{}{n}", self.cfg.session_prefix),
        };
        if let Some(store) = self.store() {
            store.create(&id, cwd);
        }
        let model = self.cfg.models[0].clone();
        let mode = if self.cfg.legacy_modes {
            LEGACY_MODES[0].0
        } else {
            MODES[0]
        };
        let session = Session::new(id.clone(), cwd.to_string(), model, mode.to_string());
        let result = self.selectors_json(&session, json!({"sessionId": id}));
        lock(&self.sessions).insert(id, Arc::new(session));
        Ok(result)
    }

    /// Adds `configOptions` (when not empty) and `models` (when advertised).
    fn selectors_json(&self, session: &Session, mut result: Value) -> Value {
        let sel = session.selection();
        let options = config_options(&self.cfg, &sel.model, &sel.mode);
        if !options.is_empty() {
            result["configOptions"] = Value::Array(options);
        }
        if let Some(models) = legacy_models(&self.cfg, &sel.model) {
            result["models"] = models;
        }
        if self.cfg.legacy_modes {
            result["modes"] = crate::models::legacy_modes(&sel.mode);
        }
        result
    }

    /// `session/set_mode`, offered with `--legacy-modes`.
    fn set_mode(&self, params: &Value) -> Result<Value, RpcError> {
        if !self.cfg.legacy_modes {
            return Err(RpcError::method_not_found("session/set_mode"));
        }
        let session = self.session(params)?;
        let mode = params
            .get("modeId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !LEGACY_MODES.iter().any(|(id, _, _)| *id == mode) {
            return Err(RpcError::invalid_params(format!("unknown mode {mode:?}")));
        }
        lock(&session.selection).mode = mode.to_string();
        Ok(json!({}))
    }

    /// The complete `configOptions` list of a session.
    pub fn options_of(&self, session: &Session) -> Vec<Value> {
        let sel = session.selection();
        config_options(&self.cfg, &sel.model, &sel.mode)
    }

    /// Looks up the session named by `params.sessionId`.
    fn store(&self) -> Option<crate::store::Store> {
        self.cfg.store.as_deref().map(crate::store::Store::open)
    }

    /// Whether `agentCapabilities` advertises `path` (an object or `true`).
    fn advertises(&self, path: &str) -> bool {
        self.cfg
            .caps
            .pointer(path)
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
    }

    fn list_sessions(&self, params: &Value) -> Result<Value, RpcError> {
        if !self.advertises("/sessionCapabilities/list") {
            return Err(RpcError::method_not_found("session/list"));
        }
        let cwd = params.get("cwd").and_then(Value::as_str);
        let cursor = params.get("cursor").and_then(Value::as_str);
        match self.store() {
            Some(store) => Ok(store.list(cwd, cursor)),
            None => {
                let sessions: Vec<Value> = lock(&self.sessions)
                    .values()
                    .map(|s| json!({"sessionId": s.id, "cwd": s.cwd}))
                    .collect();
                Ok(json!({"sessions": sessions}))
            }
        }
    }

    /// `session/load` (replaying the prompts as user messages) or `session/resume`.
    fn reopen_session(&self, params: &Value, replay: bool) -> Result<Value, RpcError> {
        let (method, capability) = if replay {
            ("session/load", "/loadSession")
        } else {
            ("session/resume", "/sessionCapabilities/resume")
        };
        if !self.advertises(capability) {
            return Err(RpcError::method_not_found(method));
        }
        let id = params
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("missing sessionId"))?;
        let known = lock(&self.sessions)
            .get(id)
            .map(|s| (s.cwd.clone(), Vec::new()));
        let (cwd, prompts) = match known.or_else(|| self.store().and_then(|s| s.read(id))) {
            Some(found) => found,
            None => return Err(RpcError::new(-32002, format!("unknown session {id}"))),
        };
        if replay {
            for text in &prompts {
                let update = json!({"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": text}});
                self.out
                    .send(&crate::output::session_update_frame(id, update));
            }
        }
        let session = Session::new(
            id.to_owned(),
            cwd,
            self.cfg.models[0].clone(),
            MODES[0].to_string(),
        );
        let result = self.selectors_json(&session, json!({}));
        lock(&self.sessions).insert(id.to_owned(), Arc::new(session));
        Ok(result)
    }

    fn delete_session(&self, params: &Value) -> Result<Value, RpcError> {
        if !self.advertises("/sessionCapabilities/delete") {
            return Err(RpcError::method_not_found("session/delete"));
        }
        let id = params
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("missing sessionId"))?;
        let in_memory = lock(&self.sessions).remove(id).is_some();
        let stored = self.store().is_some_and(|s| s.delete(id));
        if in_memory || stored {
            Ok(json!({}))
        } else {
            Err(RpcError::new(-32002, format!("unknown session {id}")))
        }
    }

    pub fn session(&self, params: &Value) -> Result<Arc<Session>, RpcError> {
        let id = params
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("missing sessionId"))?;
        lock(&self.sessions)
            .get(id)
            .cloned()
            .ok_or_else(|| RpcError::new(-32002, format!("unknown session {id}")))
    }

    /// Checks a model id against `--models`.
    fn check_model(&self, model: &str) -> Result<(), RpcError> {
        if self.cfg.models.iter().any(|m| m == model) {
            Ok(())
        } else {
            Err(RpcError::invalid_params(format!("unknown model {model}")))
        }
    }

    fn set_config_option(&self, params: &Value) -> Result<Value, RpcError> {
        let method = "session/set_config_option";
        let config_id = params
            .get("configId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let is_model = config_id == self.cfg.model_option_id;
        let is_mode = self.cfg.mode_option && config_id == "mode";
        // Without a settable option the whole method is unknown to this agent.
        if !self.cfg.set_model_method.accepts_config() && (is_model || !self.cfg.mode_option) {
            return Err(RpcError::method_not_found(method));
        }
        let session = self.session(params)?;
        let value = params
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("value must be a string"))?;
        if is_model {
            self.check_model(value)?;
            lock(&session.selection).model = value.to_string();
        } else if is_mode {
            if !MODES.contains(&value) {
                return Err(RpcError::invalid_params(format!("unknown mode {value}")));
            }
            lock(&session.selection).mode = value.to_string();
        } else {
            return Err(RpcError::invalid_params(format!(
                "unknown config option {config_id}"
            )));
        }
        Ok(json!({"configOptions": self.options_of(&session)}))
    }

    fn set_model(&self, params: &Value) -> Result<Value, RpcError> {
        if !self.cfg.set_model_method.accepts_legacy() {
            return Err(RpcError::method_not_found("session/set_model"));
        }
        let session = self.session(params)?;
        let model = params
            .get("modelId")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("modelId must be a string"))?;
        self.check_model(model)?;
        lock(&session.selection).model = model.to_string();
        Ok(json!({}))
    }

    fn close_session(&self, params: &Value) -> Result<Value, RpcError> {
        let advertised = self
            .cfg
            .caps
            .pointer("/sessionCapabilities/close")
            .is_some_and(|v| !v.is_null() && *v != Value::Bool(false));
        if !advertised {
            return Err(RpcError::method_not_found("session/close"));
        }
        let session = self.session(params)?;
        session.cancel.cancel();
        lock(&self.sessions).remove(&session.id);
        Ok(json!({}))
    }

    fn start_prompt(self: &Arc<Self>, raw_id: &str, params: &Value) -> Handled {
        let session = match self.session(params) {
            Ok(s) => s,
            Err(err) => return Handled::Reply(Err(err)),
        };
        let Some(blocks) = params.get("prompt").and_then(Value::as_array) else {
            return Handled::Reply(Err(RpcError::invalid_params("prompt must be an array")));
        };
        let text: String = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        if let Some(store) = self.store() {
            store.record_prompt(&session.id, &text);
        }
        // Reset here, not on the prompt thread, so a cancel sent right after
        // the prompt is never lost.
        session.cancel.reset();
        let agent = Arc::clone(self);
        let raw_id = raw_id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("prompt-{}", session.id))
            .spawn(move || prompt::run(&agent, &session, &raw_id, &text));
        match spawned {
            Ok(handle) => Handled::Spawned(handle),
            Err(err) => Handled::Reply(Err(RpcError::new(
                -32603,
                format!("cannot start prompt thread: {err}"),
            ))),
        }
    }
}

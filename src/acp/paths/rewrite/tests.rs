//! Unit tests of the payload rewrites, one rule each.

use serde_json::json;

use super::*;

/// The editor's project is the workspace; a tool directory and a data directory are mounted.
fn map() -> PathMap {
    PathMap::for_session(
        "/home/u/proj",
        "/workspace",
        [("/home/u/.local/bin", "/opt/tools"), ("/srv/data", "/data")],
    )
    .unwrap()
}

fn to_agent(method: &str, mut params: Value) -> (Value, Vec<String>) {
    let warnings = map().rewrite_client_to_agent(method, &mut params);
    (params, warnings)
}

fn to_client(method: &str, mut params: Value) -> Result<Value, PathError> {
    map()
        .rewrite_agent_to_client(method, &mut params)
        .map(|()| params)
}

#[test]
fn session_new_maps_cwd_and_additional_directories() {
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "additionalDirectories": ["/srv/data/sets", "/home/u/proj/sub/"],
               "mcpServers": []}),
    );
    assert_eq!(
        params,
        json!({"cwd": "/workspace", "additionalDirectories": ["/data/sets", "/workspace/sub"], "mcpServers": []})
    );
    assert!(warnings.is_empty());
}

#[test]
fn load_resume_fork_and_list_map_cwd_too() {
    for method in [
        "session/load",
        "session/resume",
        "session/fork",
        "session/list",
    ] {
        let (params, warnings) =
            to_agent(method, json!({"sessionId": "s", "cwd": "/home/u/proj/x"}));
        assert_eq!(
            params,
            json!({"sessionId": "s", "cwd": "/workspace/x"}),
            "{method}"
        );
        assert!(warnings.is_empty());
    }
}

#[test]
fn unmapped_cwd_is_kept_with_a_warning() {
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/other", "mcpServers": []}),
    );
    assert_eq!(params["cwd"], "/home/u/other");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("/home/u/other"), "{warnings:?}");
}

#[test]
fn unmapped_additional_directory_is_dropped_with_a_warning() {
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "additionalDirectories": ["/etc", "/srv/data", 7]}),
    );
    assert_eq!(params["additionalDirectories"], json!(["/data", 7]));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("\"/etc\""), "{warnings:?}");
}

#[test]
fn mcp_stdio_with_unmapped_absolute_command_is_dropped() {
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "mcpServers": [
            {"name": "fs", "command": "/usr/local/bin/mcp-fs", "args": [], "env": []},
            {"name": "typed", "type": "stdio", "command": "/opt/mcp", "args": [], "env": []}]}),
    );
    assert_eq!(params["mcpServers"], json!([]));
    assert_eq!(warnings.len(), 2);
    assert!(
        warnings[0].contains("\"fs\"") && warnings[0].contains("/usr/local/bin/mcp-fs"),
        "{warnings:?}"
    );
}

#[test]
fn mcp_stdio_command_under_a_mount_is_mapped() {
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "mcpServers": [
            {"name": "a", "command": "/home/u/.local/bin/mcp-a", "args": ["/home/u/proj"], "env": []},
            {"name": "b", "type": "stdio", "command": "/home/u/proj/tools/mcp-b", "args": [], "env": []}]}),
    );
    assert_eq!(
        params["mcpServers"],
        json!([
            {"name": "a", "command": "/opt/tools/mcp-a", "args": ["/home/u/proj"], "env": []},
            {"name": "b", "type": "stdio", "command": "/workspace/tools/mcp-b", "args": [], "env": []}])
    );
    assert!(warnings.is_empty());
}

#[test]
fn mcp_bare_command_name_is_kept() {
    let server = json!({"name": "n", "command": "npx", "args": ["-y", "mcp"], "env": []});
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "mcpServers": [server.clone()]}),
    );
    assert_eq!(params["mcpServers"], json!([server]));
    assert!(warnings.is_empty());
}

#[test]
fn mcp_http_sse_and_unknown_servers_are_kept() {
    let servers = json!([
        {"type": "http", "name": "h", "url": "http://localhost:1/mcp", "headers": [], "command": "/x"},
        {"type": "sse", "name": "s", "url": "http://localhost:2/sse", "headers": []},
        {"type": "acp", "name": "a", "id": "x"},
        {"type": 3, "command": "/nowhere"},
        "not a server"]);
    let (params, warnings) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "mcpServers": servers.clone()}),
    );
    assert_eq!(params["mcpServers"], servers);
    assert!(warnings.is_empty());
}

#[test]
fn prompt_file_uris_are_mapped_and_others_kept() {
    let (params, warnings) = to_agent(
        "session/prompt",
        json!({"sessionId": "s", "prompt": [
            {"type": "text", "text": "see /home/u/proj/a.rs"},
            {"type": "resource_link", "name": "a b.rs", "uri": "file:///home/u/proj/a%20b.rs"},
            {"type": "resource", "resource": {"uri": "file:///home/u/proj/c.rs#L1:2", "text": "x"}},
            {"type": "resource_link", "name": "web", "uri": "https://example.com/home/u/proj"}]}),
    );
    assert_eq!(
        params["prompt"],
        json!([
            {"type": "text", "text": "see /home/u/proj/a.rs"},
            {"type": "resource_link", "name": "a b.rs", "uri": "file:///workspace/a%20b.rs"},
            {"type": "resource", "resource": {"uri": "file:///workspace/c.rs#L1:2", "text": "x"}},
            {"type": "resource_link", "name": "web", "uri": "https://example.com/home/u/proj"}])
    );
    assert!(warnings.is_empty());
}

#[test]
fn prompt_unmapped_file_uri_is_kept_with_a_warning() {
    let (params, warnings) = to_agent(
        "session/prompt",
        json!({"sessionId": "s", "prompt": [{"type": "resource_link", "name": "p", "uri": "file:///etc/passwd"}]}),
    );
    assert_eq!(params["prompt"][0]["uri"], "file:///etc/passwd");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn fs_paths_are_mapped_to_the_host() {
    for method in ["fs/read_text_file", "fs/write_text_file"] {
        let params = to_client(
            method,
            json!({"sessionId": "s", "path": "/data/x.csv", "line": 3}),
        )
        .unwrap();
        assert_eq!(
            params,
            json!({"sessionId": "s", "path": "/srv/data/x.csv", "line": 3})
        );
    }
}

#[test]
fn fs_outside_every_root_is_refused() {
    for path in [
        "/etc/passwd",
        "/workspace/../etc/passwd",
        "/workspace2/a",
        "workspace/a",
        "",
        "C:\\x",
    ] {
        let refused = to_client("fs/read_text_file", json!({"sessionId": "s", "path": path}));
        assert_eq!(
            refused,
            Err(PathError::OutsideRoots {
                path: path.to_owned()
            }),
            "{path:?}"
        );
        assert!(to_client("fs/write_text_file", json!({"path": path, "content": "x"})).is_err());
    }
    assert_eq!(
        PathError::OutsideRoots { path: "/x".into() }.code(),
        INVALID_PARAMS
    );
}

#[test]
fn fs_without_a_string_path_is_left_for_the_editor_to_reject() {
    assert_eq!(
        to_client("fs/read_text_file", json!({"sessionId": "s"})),
        Ok(json!({"sessionId": "s"}))
    );
    assert_eq!(
        to_client("fs/read_text_file", json!({"path": 1})),
        Ok(json!({"path": 1}))
    );
}

#[test]
fn terminal_cwd_is_mapped_refused_or_absent() {
    let params =
        json!({"sessionId": "s", "command": "ls", "args": [], "env": [], "cwd": "/workspace/src"});
    assert_eq!(
        to_client("terminal/create", params).unwrap()["cwd"],
        "/home/u/proj/src"
    );
    assert_eq!(
        to_client("terminal/create", json!({"command": "ls", "cwd": "/root"})),
        Err(PathError::OutsideRoots {
            path: "/root".into()
        })
    );
    assert!(to_client("terminal/create", json!({"command": "ls"})).is_ok());
    assert!(to_client("terminal/create", json!({"command": "ls", "cwd": null})).is_ok());
}

#[test]
fn tool_call_locations_and_diffs_are_mapped_unmapped_kept() {
    for kind in ["tool_call", "tool_call_update"] {
        let params = to_client(
            "session/update",
            json!({"sessionId": "s", "update": {"sessionUpdate": kind, "toolCallId": "t",
                "locations": [{"path": "/workspace/a.rs", "line": 2}, {"path": "/tmp/x"}],
                "content": [
                    {"type": "diff", "path": "/workspace/a.rs", "oldText": "a", "newText": "b"},
                    {"type": "diff", "path": "/tmp/y", "newText": "b"},
                    {"type": "content", "content": {"type": "resource_link", "name": "d", "uri": "file:///data/d"}},
                    {"type": "terminal", "terminalId": "term"}]}}),
        )
        .unwrap();
        assert_eq!(
            params["update"],
            json!({"sessionUpdate": kind, "toolCallId": "t",
                "locations": [{"path": "/home/u/proj/a.rs", "line": 2}, {"path": "/tmp/x"}],
                "content": [
                    {"type": "diff", "path": "/home/u/proj/a.rs", "oldText": "a", "newText": "b"},
                    {"type": "diff", "path": "/tmp/y", "newText": "b"},
                    {"type": "content", "content": {"type": "resource_link", "name": "d", "uri": "file:///srv/data/d"}},
                    {"type": "terminal", "terminalId": "term"}]})
        );
    }
}

#[test]
fn message_chunk_resource_uris_are_mapped() {
    for kind in [
        "agent_message_chunk",
        "user_message_chunk",
        "agent_thought_chunk",
    ] {
        let link = to_client(
            "session/update",
            json!({"sessionId": "s", "update": {"sessionUpdate": kind,
                "content": {"type": "resource_link", "name": "a", "uri": "file:///workspace/a"}}}),
        )
        .unwrap();
        assert_eq!(link["update"]["content"]["uri"], "file:///home/u/proj/a");
        let embedded = to_client(
            "session/update",
            json!({"sessionId": "s", "update": {"sessionUpdate": kind,
                "content": {"type": "resource", "resource": {"uri": "file:///etc/x", "text": ""}}}}),
        )
        .unwrap();
        assert_eq!(
            embedded["update"]["content"]["resource"]["uri"],
            "file:///etc/x"
        );
    }
}

#[test]
fn permission_request_tool_call_is_mapped() {
    let params = to_client(
        "session/request_permission",
        json!({"sessionId": "s", "options": [],
               "toolCall": {"toolCallId": "t", "locations": [{"path": "/workspace/a"}],
                            "content": [{"type": "diff", "path": "/workspace/a", "newText": ""}]}}),
    )
    .unwrap();
    assert_eq!(params["toolCall"]["locations"][0]["path"], "/home/u/proj/a");
    assert_eq!(params["toolCall"]["content"][0]["path"], "/home/u/proj/a");
}

#[test]
fn session_list_result_cwds_are_mapped_to_the_host() {
    let mut result = json!({"sessions": [
        {"sessionId": "a", "cwd": "/workspace", "title": "t", "_meta": {"k": "/workspace"}},
        {"sessionId": "b", "cwd": "/elsewhere", "additionalDirectories": ["/data", "/nope"]},
        {"sessionId": "c"}], "nextCursor": "n"});
    map().rewrite_agent_result("session/list", &mut result);
    assert_eq!(
        result,
        json!({"sessions": [
            {"sessionId": "a", "cwd": "/home/u/proj", "title": "t", "_meta": {"k": "/workspace"}},
            {"sessionId": "b", "cwd": "/elsewhere", "additionalDirectories": ["/srv/data", "/nope"]},
            {"sessionId": "c"}], "nextCursor": "n"})
    );
    let mut other = json!({"sessions": [{"cwd": "/workspace"}]});
    map().rewrite_agent_result("session/new", &mut other);
    assert_eq!(other, json!({"sessions": [{"cwd": "/workspace"}]}));
}

#[test]
fn unknown_fields_and_meta_survive() {
    let (params, _) = to_agent(
        "session/new",
        json!({"cwd": "/home/u/proj", "_meta": {"cwd": "/home/u/proj"}, "future": {"cwd": "/home/u/proj"},
               "mcpServers": [{"name": "x", "command": "/home/u/proj/m", "args": [], "env": [], "_meta": {"a": 1}}]}),
    );
    assert_eq!(
        params,
        json!({"cwd": "/workspace", "_meta": {"cwd": "/home/u/proj"}, "future": {"cwd": "/home/u/proj"},
               "mcpServers": [{"name": "x", "command": "/workspace/m", "args": [], "env": [], "_meta": {"a": 1}}]})
    );
}

#[test]
fn other_methods_are_untouched() {
    let params = json!({"sessionId": "s", "cwd": "/workspace", "path": "/etc/passwd"});
    for method in [
        "session/cancel",
        "terminal/output",
        "_x/fs",
        "initialize",
        "",
    ] {
        assert_eq!(to_client(method, params.clone()), Ok(params.clone()));
        assert_eq!(to_agent(method, params.clone()), (params.clone(), vec![]));
    }
}

#[test]
fn odd_shapes_never_panic_and_stay_unchanged() {
    let methods = [
        "session/new",
        "session/load",
        "session/list",
        "session/prompt",
        "fs/read_text_file",
        "terminal/create",
        "session/update",
        "session/request_permission",
    ];
    let odd = [
        json!(null),
        json!([]),
        json!("s"),
        json!(1),
        json!({"cwd": 1, "path": [], "prompt": {}}),
        json!({"additionalDirectories": "x", "mcpServers": {"a": 1}, "prompt": [1, null, {"type": 1}]}),
        json!({"mcpServers": [null, 1, {"command": 2}, {"type": null, "command": null}]}),
        json!({"prompt": [{"type": "resource"}, {"type": "resource", "resource": "x"}, {"type": "resource_link", "uri": 1}]}),
        json!({"update": null}),
        json!({"update": {"sessionUpdate": 5}}),
        json!({"update": {"sessionUpdate": "tool_call", "locations": "x", "content": [1, {"type": "diff", "path": 1}]}}),
        json!({"update": {"sessionUpdate": "agent_message_chunk", "content": [1]}}),
        json!({"toolCall": {"locations": [null, {"path": null}], "content": {}}}),
    ];
    for method in methods {
        for value in &odd {
            let mut params = value.clone();
            map().rewrite_client_to_agent(method, &mut params);
            assert_eq!(&params, value, "{method} {value}");
            let mut params = value.clone();
            let _ = map().rewrite_agent_to_client(method, &mut params);
            assert_eq!(&params, value, "{method} {value}");
            let mut result = value.clone();
            map().rewrite_agent_result(method, &mut result);
            assert_eq!(&result, value, "{method} {value}");
        }
    }
    let mut odd_list = json!({"sessions": [1, {"cwd": 2, "additionalDirectories": [3]}]});
    map().rewrite_agent_result("session/list", &mut odd_list);
    assert_eq!(
        odd_list,
        json!({"sessions": [1, {"cwd": 2, "additionalDirectories": [3]}]})
    );
}

#[test]
fn identity_map_refuses_no_absolute_path() {
    let map = PathMap::identity();
    let mut params = json!({"sessionId": "s", "path": "/etc/hosts"});
    assert_eq!(
        map.rewrite_agent_to_client("fs/read_text_file", &mut params),
        Ok(())
    );
    assert_eq!(params["path"], "/etc/hosts");
    let mut params =
        json!({"cwd": "/home/u/proj", "mcpServers": [{"name": "m", "command": "/usr/bin/m"}]});
    assert!(map
        .rewrite_client_to_agent("session/new", &mut params)
        .is_empty());
    assert_eq!(params["mcpServers"][0]["command"], "/usr/bin/m");
    let mut relative = json!({"path": "a.txt"});
    assert!(map
        .rewrite_agent_to_client("fs/read_text_file", &mut relative)
        .is_err());
}

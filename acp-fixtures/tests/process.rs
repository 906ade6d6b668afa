//! Process-level behaviour: exit codes, stdin end of file, stderr and the
//! input log.

mod common;

use common::{with_timeout, Fixture, TEST_LIMIT};
use serde_json::json;
use std::time::Duration;

#[test]
fn crash_exits_with_70() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--name", "delta"]);
        let sid = fx.start_session();
        fx.send_prompt(&sid, "crash");
        assert_eq!(fx.wait().code(), Some(70));
        assert!(fx
            .stderr_after_exit()
            .contains("fixture delta: crashing on request"));
    });
}

#[test]
fn exit_on_start_reads_nothing() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--exit-on-start", "9", "--name", "eps"]);
        assert_eq!(fx.wait().code(), Some(9));
        assert!(fx.try_recv_raw(Duration::from_millis(100)).is_none());
        assert!(fx
            .stderr_after_exit()
            .contains("fixture eps: exiting on start"));
    });
}

#[test]
fn unknown_flags_are_usage_errors() {
    assert_eq!(acp_fixtures::run(vec!["--no-such-flag".into()]), 2);
    assert_eq!(
        acp_fixtures::run(vec!["--delay-ms".into(), "soon".into()]),
        2
    );
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--frobnicate"]);
        assert_eq!(fx.wait().code(), Some(2));
        std::thread::sleep(Duration::from_millis(50));
        assert!(fx.stderr().contains("usage:"));
    });
}

#[test]
fn stdin_eof_exits_cleanly() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&[]);
        let sid = fx.start_session();
        // A prompt waiting for the client is released when stdin closes.
        fx.send_prompt(&sid, "permission");
        fx.send_prompt(&sid, "hang");
        fx.close_stdin();
        assert!(fx.wait().success());
    });
}

#[test]
fn ignore_stdin_eof_keeps_running() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--ignore-stdin-eof"]);
        fx.start_session();
        fx.close_stdin();
        std::thread::sleep(Duration::from_millis(300));
        assert!(fx.is_running());
    });
}

#[test]
fn stderr_noise_stays_off_stdout() {
    with_timeout(TEST_LIMIT, || {
        let mut fx = Fixture::spawn(&["--stderr-noise"]);
        let init = fx.recv_after_call_raw();
        assert!(
            init.starts_with(r#"{"jsonrpc":"2.0","id":1,"result":"#),
            "{init}"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(fx.stderr().lines().count() >= 3);
    });
}

#[test]
fn log_records_every_input_line() {
    with_timeout(TEST_LIMIT, || {
        let dir = std::env::temp_dir().join(format!("acp-fixture-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flag_log = dir.join("flag.ndjson");
        let env_log = dir.join("env.ndjson");
        let _ = std::fs::remove_file(&flag_log);
        let _ = std::fs::remove_file(&env_log);

        let mut fx = Fixture::spawn(&["--log", flag_log.to_str().unwrap()]);
        fx.send_raw("not json at all");
        fx.send_raw(r#"{"jsonrpc":"2.0","id":"x","method":"_fixture/echo","params":{"k":1}}"#);
        fx.recv();
        let logged = std::fs::read_to_string(&flag_log).unwrap();
        assert_eq!(
            logged,
            "not json at all\n{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"_fixture/echo\",\"params\":{\"k\":1}}\n"
        );

        let mut fx =
            Fixture::spawn_with_env(&[], &[("ACP_FIXTURE_LOG", env_log.to_str().unwrap())]);
        fx.call_ok("initialize", json!({"protocolVersion": 1}));
        let logged = std::fs::read_to_string(&env_log).unwrap();
        assert!(logged.contains(r#""method":"initialize""#));
        assert_eq!(logged.lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Extension of the harness used by the stderr test: raw initialize answer.
trait RawCall {
    fn recv_after_call_raw(&mut self) -> String;
}

impl RawCall for Fixture {
    fn recv_after_call_raw(&mut self) -> String {
        self.send_request("initialize", json!({"protocolVersion": 1}));
        self.recv_raw()
    }
}

//! `completions` and `man` of the real binary: the bash script driven in a real bash, the zsh and
//! fish scripts checked for every command, the man pages formatted by `man` and groff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use terok_executor::cli::Cli;

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(run(args).stdout).unwrap()
}

/// The path of every command a user can type, e.g. `["acp", "list"]`.
fn visible_commands() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut path = path.to_vec();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    out
}

/// The man page of a command path: `terok-executor-acp-list`.
fn page_name(path: &[String]) -> String {
    std::iter::once("terok-executor")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("-")
}

/// A bash that has sourced `terok-executor completions bash`, with the binary on its `PATH`,
/// running `script` after it.
fn bash(script: &str) -> Output {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <(terok-executor completions bash) || exit 3\n{script}"
        ))
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
}

/// What the registered completion function offers for `words`, the last being the one under
/// the cursor, as bash's programmable completion would call it.
fn complete(words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let script = format!(
        r#"spec=$(complete -p terok-executor) || exit 4
fn=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")
[ -n "$fn" ] || exit 5
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
"$fn" terok-executor "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" ")
    );
    let out = bash(&script);
    assert!(
        out.status.success(),
        "completing {words:?}: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn sourced_bash_script_registers_a_completion_function() {
    let out = bash("complete -p terok-executor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = String::from_utf8(out.stdout).unwrap();
    assert!(spec.starts_with("complete "), "{spec}");
    assert!(spec.contains(" -F "), "{spec}");
    assert!(spec.trim_end().ends_with(" terok-executor"), "{spec}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bash_completes_subcommands_options_and_values_at_every_level() {
    assert_eq!(complete(&["terok-executor", "ac"]), ["acp"]);
    assert_eq!(complete(&["terok-executor", "acp", "l"]), ["list"]);
    assert_eq!(
        complete(&["terok-executor", "acp", "list", "--runtime", ""]),
        ["podman", "local"]
    );
    assert_eq!(
        complete(&["terok-executor", "acp", "connect", "--runtime", "l"]),
        ["local"]
    );
    assert_eq!(complete(&["terok-executor", "man", "--o"]), ["--out-dir"]);
    let shells = complete(&["terok-executor", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|s| s == shell), "{shell} in {shells:?}");
    }
    // Every command is offered under its parent.
    for path in visible_commands() {
        let mut words = vec!["terok-executor"];
        words.extend(path.iter().map(String::as_str));
        let offered = complete(&words);
        let name = path.last().unwrap();
        assert!(
            offered.contains(name),
            "`{}` offers {offered:?}",
            words.join(" ")
        );
    }
}

#[test]
fn zsh_script_is_a_compdef_naming_every_command() {
    let script = stdout(&["completions", "zsh"]);
    assert!(script.starts_with("#compdef terok-executor\n"), "{script}");
    for path in visible_commands() {
        // `_describe` lists each command as 'name:about'.
        let name = path.last().unwrap();
        assert!(script.contains(&format!("'{name}:")), "zsh: no {path:?}");
    }
}

#[test]
fn fish_script_completes_every_command() {
    let script = stdout(&["completions", "fish"]);
    for path in visible_commands() {
        let needle = format!("-a \"{}\"", path.last().unwrap());
        assert!(
            script
                .lines()
                .any(|l| l.starts_with("complete -c terok-executor ") && l.contains(&needle)),
            "fish: no {path:?}"
        );
    }
}

/// Runs `cmd` (a formatter), which must succeed without a word on stderr; returns its stdout.
fn silently(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?}: {:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{cmd:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// `man -l` on `page`, as a user reads it.
fn man_l(page: &Path) -> String {
    silently(
        Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("MAN_KEEP_FORMATTING"),
    )
}

/// groff with every warning enabled has nothing to say about `page`.
fn groff_is_silent(page: &Path) {
    silently(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page),
    );
}

#[test]
fn man_prints_every_page_and_man_formats_them_cleanly() {
    let roff = stdout(&["man"]);
    let titles: Vec<&str> = roff.lines().filter(|l| l.starts_with(".TH ")).collect();
    assert!(titles[0].starts_with(".TH terok-executor 1 "), "{titles:?}");
    assert_eq!(titles.len(), 1 + visible_commands().len(), "{titles:?}");
    assert!(roff.is_ascii(), "the roff source is ASCII");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("terok-executor.1");
    std::fs::write(&page, &roff).unwrap();
    groff_is_silent(&page);
    let text = man_l(&page);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("terok-executor(1)"), "{first}");
    assert!(text.contains("\nNAME\n       terok-executor - "), "{text}");
    // The SUBCOMMANDS section names each page, and each page follows with its own usage.
    assert!(text.contains("terok-executor-acp(1)"), "{text}");
    assert!(text.contains("terok-executor acp "), "{text}");
    assert!(text.contains("terok-executor acp list "), "{text}");
    for path in visible_commands() {
        let title = format!("{}(1)", page_name(&path));
        assert!(text.contains(&title), "no page {title}");
    }
    assert!(
        !text.contains("fixture-agent"),
        "hidden commands have no page"
    );
    // Help text beyond ASCII survives the trip.
    assert!(text.contains("(gh, glab, sonar, …)"), "{text}");
}

#[test]
fn man_out_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("share").join("man1");
    let out = run(&["man", "--out-dir", out_dir.to_str().unwrap()]);
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = std::iter::once("terok-executor.1".to_owned())
        .chain(
            visible_commands()
                .iter()
                .map(|path| format!("{}.1", page_name(path))),
        )
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    for name in [
        "terok-executor.1",
        "terok-executor-acp.1",
        "terok-executor-acp-list.1",
    ] {
        let page: PathBuf = out_dir.join(name);
        groff_is_silent(&page);
        let text = man_l(&page);
        let title = format!("{}(1)", name.trim_end_matches(".1"));
        assert!(text.starts_with(&title), "{name}: {text}");
    }
    let list = man_l(&out_dir.join("terok-executor-acp-list.1"));
    assert!(list.contains("terok-executor acp list"), "{list}");
    assert!(list.contains("--json"), "{list}");
}

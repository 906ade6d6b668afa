//! The `acp-fixture-agent` binary: a thin wrapper around [`acp_fixtures::run`].

fn main() {
    std::process::exit(acp_fixtures::run(std::env::args().skip(1).collect()));
}

fn main() {
    std::process::exit(acp_fixtures::run(std::env::args().skip(1).collect()));
}

//! The `tarantula` binary: hand the command line to the server, exit with its code.

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = tarantula::server::run(argv);
    std::process::exit(code);
}

//! The `signage` command: parses arguments, starts tracing, runs the chosen command.

fn main() -> std::process::ExitCode {
    server::cli::main()
}

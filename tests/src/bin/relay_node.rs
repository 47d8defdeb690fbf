//! The relay as a child process for tests that kill it or read its logs: exactly the
//! `nabij-relay` command line.

fn main() -> std::process::ExitCode {
    nabij_sync_server::cli::main()
}

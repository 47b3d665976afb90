//! The `tend` command line: clap, anyhow and exit codes live here alone (`src/cli/`, one file per subcommand);
//! the library does the work. Exit codes: 0 ok, 1 the thing checked is unhealthy or a step failed, 2 bad usage
//! or config, 3 an unexpected error.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

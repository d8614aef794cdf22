use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    outcall::cli::run(outcall::cli::Cli::parse())
}

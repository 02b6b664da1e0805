//! The `mustknow` command line: chores around the course, starting with `data verify`.

use clap::{Parser, Subcommand};
use mustknow::data::DataDir;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The machine-learning must-knows: tools for the course's notebooks and data.
#[derive(Parser)]
#[command(name = "mustknow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The datasets in data/ (or $MUSTKNOW_DATA).
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Checks every data file: present, matching its sha256, and loading in full.
    Verify {
        /// The data folder [default: $MUSTKNOW_DATA, else the crate's data/].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Data {
            command: DataCommand::Verify { dir },
        } => verify(dir.map_or_else(DataDir::from_env, DataDir::at)),
    }
}

/// Prints one line per file and fails when any file has a problem, after checking them all.
fn verify(data: DataDir) -> ExitCode {
    let start = Instant::now();
    let checks = data.verify_all();
    let width = checks.iter().map(|c| c.file.name.len()).max().unwrap_or(0);
    let mut failed = 0;
    for check in &checks {
        match &check.outcome {
            Ok(summary) => println!("ok      {:width$}  {summary}", check.file.name),
            Err(error) => {
                failed += 1;
                println!("FAILED  {:width$}  {error}", check.file.name);
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let folder = data.root().display();
    if failed == 0 {
        println!(
            "all {} data files in {folder} are fine ({seconds:.2} s)",
            checks.len()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{failed} of {} data files in {folder} have problems (see above)",
            checks.len()
        );
        ExitCode::FAILURE
    }
}

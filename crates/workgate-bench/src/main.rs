//! `workgate-bench`: the figures in BENCHMARKS.md, reproducible from the repository.
//!
//! - `import`: a bulk import of N members into one enterprise through `Services::import_members`
//!   (the code path of `POST /api/v1/members/import` and `workgate member import`), first with
//!   every row new, then the same file again (every row unchanged); rows/s and peak memory.
//! - `directory`: member listing and search over real HTTP on loopback against the real server
//!   (`workgate::server::start`), with E enterprises of M members each in the database; latency
//!   percentiles per page.
//! - `sign`: one ID-token signature (RS256, ES256) with the library Workgate signs with, beside
//!   ring and the pure-Rust `rsa` crate.
//!
//! Run in release mode: `cargo run --release -p workgate-bench -- import --rows 100000`.
//! Databases go under `bench-data/` (gitignored); the seeded directory database is kept there so
//! that later runs skip seeding.

mod data;
mod directory;
mod import;
mod sign;
mod stats;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "workgate-bench", about = "Benchmarks of Workgate's directory and ID-token signatures")]
struct Cli {
    /// Where databases and generated files go.
    #[arg(long, global = true, default_value = "bench-data")]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bulk import into one enterprise: a first import (all created), then the same file again.
    Import(import::ImportArgs),
    /// Listing and searching members over HTTP, with many enterprises in the database.
    Directory(directory::DirectoryArgs),
    /// What one ID-token signature costs, by library.
    Sign(sign::SignArgs),
    /// One import in a process of its own, so that its peak memory is its own (used by `import`).
    #[command(hide = true)]
    ImportRun(import::ImportRunArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.data_dir)?;
    match cli.command {
        Command::Import(args) => import::run(&cli.data_dir, args),
        Command::Directory(args) => directory::run(&cli.data_dir, args),
        Command::Sign(args) => sign::run(args),
        Command::ImportRun(args) => import::run_one(args),
    }
}

//! One module per command.

pub mod demo;
pub mod enterprise;
pub mod member_import;
pub mod serve;

use crate::cli::Cli;
use crate::config::{DEFAULT_DATABASE, FileConfig, default_key_file};
use std::path::PathBuf;
use workgate_store::Durability;

/// The database URL in effect: flag or environment, else the file, else the default.
pub fn database_url(cli: &Cli, file: &FileConfig) -> String {
    cli.database.clone().or_else(|| file.database.clone()).unwrap_or_else(|| DEFAULT_DATABASE.to_string())
}

/// Whether the operator accepts database settings that could lose acknowledged writes: the flag
/// or environment, else the file; no by default.
pub fn durability(cli: &Cli, file: &FileConfig) -> Durability {
    if cli.accept_unsafe_durability || file.accept_unsafe_durability == Some(true) {
        Durability::AcceptUnsafe
    } else {
        Durability::Required
    }
}

/// The key file in effect: flag or environment, else the file, else beside the database.
pub fn key_file(cli: &Cli, file: &FileConfig, database: &str) -> PathBuf {
    cli.key_file.clone().or_else(|| file.key_file.clone()).unwrap_or_else(|| default_key_file(database))
}

//! Workgate's storage: the [`workgate_domain::store::Store`] port implemented over SQLite (the
//! embedded default). Migrations are versioned files under `migrations/<backend>/`, embedded in
//! the binary and applied on start.
//!
//! SQL is written in the dialect both SQLite and PostgreSQL accept (`$N` parameters, `ON CONFLICT`,
//! partial indexes, integer times), so that the PostgreSQL implementation reads the same.

mod errors;
mod rows;
pub mod sqlite;
mod sqlite_login;
mod sqlite_writer;

use std::sync::Arc;
use workgate_domain::store::Store;
use workgate_domain::{Error, Result};

/// Opens the database named by `url` (`sqlite://path`, `sqlite::memory:`), applying migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Err(Error::Internal("PostgreSQL support is not built yet; use a sqlite:// database".into()))
    } else {
        Err(Error::Internal(format!("unsupported database URL '{url}': use sqlite://PATH")))
    }
}

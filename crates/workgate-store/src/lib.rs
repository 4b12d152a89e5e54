//! Workgate's storage: the [`workgate_domain::store::Store`] port, implemented once over SQL and
//! run on SQLite (the embedded default) or PostgreSQL (one database shared by several nodes).
//! Migrations are versioned files under `migrations/<backend>/`, embedded in the binary and
//! applied on start.
//!
//! `directory.rs` (the `Store` half), `login/` (the `LoginStore` half, one file per seam) and `oidc.rs` (the
//! `OidcStore` half) hold every query,
//! written once in the SQL both databases accept (`sql.rs`). `sqlite.rs` and `postgres.rs` open a
//! database and run transactions their own way: SQLite's through one group-commit writer
//! (`sqlite_writer.rs`), so no two writes ever interleave; PostgreSQL's as ordinary READ
//! COMMITTED transactions, where a check that a later write depends on takes a row lock first
//! (`sql::Dialect`). `durability.rs` checks at start that the database keeps acknowledged writes
//! through a crash.

mod cache;
mod directory;
pub mod durability;
mod errors;
mod login;
mod oidc;
pub mod postgres;
mod retention;
mod rows;
mod sql;
pub mod sqlite;
mod sqlite_writer;

pub use durability::{Durability, UnsafeDurability};
use errors::{SqliteResultExt, SqlxResultExt};
use sql::Conn;
use sqlite::ReadPool;
use sqlite_writer::GroupWriter;
use sqlx::PgPool;
use std::sync::Arc;
use workgate_domain::store::Store;
use workgate_domain::{Error, Result};

/// The store over either database.
pub struct SqlStore {
    db: Db,
    /// What token checks read, kept exact under writes (`cache.rs`).
    cache: Arc<cache::ReadCache>,
    /// Dropped with the store: stops its background tasks (PostgreSQL's listener and announcer).
    _stop: Option<tokio::sync::watch::Sender<()>>,
}

enum Db {
    Sqlite {
        read: ReadPool,
        /// All writes go through here: one connection, transactions shared by concurrent writers.
        writer: Arc<GroupWriter>,
    },
    Postgres {
        pool: PgPool,
        /// Hands the tables of each write to the task that tells the other nodes (`NOTIFY`, coalesced).
        announce: Arc<postgres::Announcements>,
    },
}

impl SqlStore {
    /// Where reads run: a pool, each query seeing what was committed when it started.
    fn reader(&self) -> Conn<'_> {
        match &self.db {
            Db::Sqlite { read, .. } => Conn::sqlite_pool(read),
            Db::Postgres { pool, .. } => Conn::pg_pool(pool),
        }
    }

    /// How this database spells what the two spell differently.
    fn dialect(&self) -> &'static sql::Dialect {
        match &self.db {
            Db::Sqlite { .. } => &sql::SQLITE,
            Db::Postgres { .. } => &sql::POSTGRES,
        }
    }

    /// Runs `work` on one snapshot of the database (a read-only transaction), for reads in several
    /// queries that must agree with each other.
    async fn read_snapshot<T>(&self, work: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T>) -> Result<T> {
        match &self.db {
            Db::Sqlite { read, .. } => {
                let mut pooled = read.take();
                let conn = pooled.connection_mut().lite()?;
                conn.execute_batch("BEGIN").lite()?;
                let outcome = work(&mut Conn::sqlite(conn)).await;
                conn.execute_batch("ROLLBACK").lite()?;
                outcome
            }
            Db::Postgres { pool, .. } => {
                let mut tx = pool.begin().await.db()?;
                let mut c = Conn::pg(&mut tx);
                // READ COMMITTED would give each query a snapshot of its own.
                c.execute(sql::sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")).await?;
                let outcome = work(&mut c).await;
                drop(c);
                tx.rollback().await.db()?;
                outcome
            }
        }
    }

    /// Runs `work` as one transaction and returns once it is durable. On PostgreSQL a copy of
    /// `work` runs again if the database broke a deadlock by aborting it (hence `Clone`). On
    /// SQLite it runs on the writer thread (hence `'static`: it owns what it needs), where its
    /// statements never wait, so its future is driven to its end there at once.
    ///
    /// Once it has committed (or failed), and before it returns, the cached reads of the tables it
    /// wrote are made stale, and on PostgreSQL the other nodes are told to do the same (`cache.rs`).
    async fn write<T: Send + 'static>(
        &self,
        work: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T> + Clone + Send + 'static,
    ) -> Result<T> {
        let outcome = match &self.db {
            Db::Sqlite { writer, .. } => {
                writer
                    .write(move |c| {
                        let mut conn = Conn::sqlite(c);
                        let value = futures::executor::block_on(work(&mut conn))?;
                        Ok((value, conn.written))
                    })
                    .await
            }
            Db::Postgres { pool, announce } => {
                let outcome = postgres::write(pool, work).await;
                // A failed write changed nothing; announcing it anyway is harmless.
                announce.tables(outcome.as_ref().map_or(cache::Tables::ALL, |(_, written)| *written));
                outcome
            }
        };
        self.written(outcome)
    }

    /// A write of one statement (`q`), as [`SqlStore::write`] runs it; on PostgreSQL as a
    /// transaction of its own, one round trip instead of three (`BEGIN`, the statement, `COMMIT`).
    /// Answers the rows it returns.
    async fn write_alone(&self, q: sql::Sql<'_>) -> Result<Vec<sql::Row>> {
        let outcome = match &self.db {
            Db::Sqlite { .. } => {
                let q = q.into_owned();
                return self.write(async move |c| c.fetch_all(q).await).await;
            }
            Db::Postgres { pool, announce } => {
                let outcome = postgres::write_alone(pool, q).await;
                announce.tables(outcome.as_ref().map_or(cache::Tables::ALL, |(_, written)| *written));
                outcome
            }
        };
        self.written(outcome)
    }

    /// After a write has committed (or failed), before it is acknowledged: the cached reads of the
    /// tables it wrote are made stale.
    fn written<T>(&self, outcome: Result<(T, cache::Tables)>) -> Result<T> {
        self.cache.invalidate(outcome.as_ref().map_or(cache::Tables::ALL, |(_, written)| *written));
        outcome.map(|(value, _)| value)
    }
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Its settings could lose acknowledged writes in a crash, and the operator did not accept it.
    #[error(transparent)]
    UnsafeDurability(#[from] UnsafeDurability),
    #[error(transparent)]
    Failed(#[from] Error),
}

/// Opens the database named by `url` (`sqlite://path`, `sqlite::memory:`,
/// `postgres://user@host/database`), applying migrations; refuses a database whose settings
/// could lose acknowledged writes in a crash (see [`open_with`]).
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, Durability::Required).await.map_err(|e| match e {
        OpenError::UnsafeDurability(u) => Error::Internal(u.to_string()),
        OpenError::Failed(e) => e,
    })
}

/// Opens the database named by `url`, applying migrations, after checking the settings that
/// acknowledged writes rely on to survive a crash (`durability.rs`): with settings that could
/// lose them, [`OpenError::UnsafeDurability`], unless `durability` accepts it (then a warning).
pub async fn open_with(url: &str, durability: Durability) -> Result<Arc<dyn Store>, OpenError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::open(url, durability).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::open(url, durability).await?))
    } else {
        // The scheme only: the rest of a URL may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        Err(Error::Internal(format!(
            "unsupported database URL scheme '{scheme}:': use sqlite://PATH or postgres://USER@HOST/DATABASE"
        ))
        .into())
    }
}

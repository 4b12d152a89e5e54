//! The SQLite store: the embedded default.
//!
//! Durability: WAL with `synchronous=FULL`, so an acknowledged write survives `kill -9` and power
//! loss; both are read back on the writer, the checkpoint and a read connection at start, and
//! a database that did not take them is refused (`durability.rs`; not an in-memory database,
//! whose journal is in memory and which outlives no process anyway).
//!
//! Concurrency: all writes go through one connection and open with `BEGIN IMMEDIATE`, so they
//! queue in order instead of failing with `SQLITE_BUSY`; reads use a pool of their own and never
//! wait for writers (WAL).
//!
//! Queries run through `rusqlite` on the calling thread, with each connection's prepared
//! statements cached: a lookup by key takes a few microseconds, less than handing it to a worker
//! thread and back would (as `sqlx`'s SQLite driver does for every query). `sqlx` still opens
//! the database once to apply the migrations.

use crate::durability::{self, Durability, SqliteSettings};
use crate::errors::{SqliteResultExt, SqlxResultExt};
use crate::sqlite_writer::{Checkpointer, GroupWriter};
use crate::{Db, OpenError, SqlStore};
use rusqlite::{Connection, OpenFlags};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workgate_domain::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Prepared statements kept per connection (the store has a few hundred distinct queries; the
/// hot ones stay).
const STATEMENT_CACHE: usize = 256;
/// Read connections kept open for reuse.
const READERS: usize = 8;

/// Where the database is, and how to open a connection to it.
#[derive(Clone)]
struct Location {
    path: PathBuf,
    flags: OpenFlags,
}

impl Location {
    fn open(&self, read_only: bool) -> rusqlite::Result<Connection> {
        let mut flags = self.flags;
        if read_only {
            flags.remove(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE);
            flags.insert(OpenFlags::SQLITE_OPEN_READ_ONLY);
        }
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(conn)
    }
}

/// SQLite's read connections: taken for a query (or a snapshot), given back afterwards. A
/// connection is opened when none is free.
pub(crate) struct ReadPool {
    location: Location,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(crate) fn take(&self) -> Pooled<'_> {
        let conn = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        Pooled { pool: self, conn }
    }
}

/// A read connection of the pool, opened on first use; back to the pool on drop.
pub(crate) struct Pooled<'p> {
    pool: &'p ReadPool,
    conn: Option<Connection>,
}

impl Pooled<'_> {
    pub(crate) fn connection(&mut self) -> rusqlite::Result<&Connection> {
        self.connection_mut().map(|c| &*c)
    }

    pub(crate) fn connection_mut(&mut self) -> rusqlite::Result<&mut Connection> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.location.open(true)?);
        }
        self.conn.as_mut().ok_or(rusqlite::Error::InvalidQuery)
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A connection left inside a transaction (a snapshot whose future was dropped) is closed.
        if !conn.is_autocommit() {
            return;
        }
        if let Ok(mut idle) = self.pool.idle.lock()
            && idle.len() < READERS
        {
            idle.push(conn);
        }
    }
}

/// Opens (creating if missing) and migrates the SQLite database at `url`, and checks that its
/// connections took WAL and `synchronous=FULL` (see `durability.rs` for `durability`).
pub async fn open(url: &str, durability: Durability) -> Result<SqlStore, OpenError> {
    let in_memory = url.contains(":memory:");
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Internal(format!("invalid database URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let location = if in_memory {
        // An in-memory database lives as long as a connection to it: the writer's, here. Its
        // readers reach it by a name of its own (shared cache).
        let name = format!("file:workgate-{}?mode=memory&cache=shared", uuid_like());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Location { path: PathBuf::from(name), flags }
    } else {
        let mut conn = options.connect().await.db()?;
        MIGRATOR.run(&mut conn).await.map_err(|e| Error::Internal(format!("migrating the database failed: {e}")))?;
        sqlx::Connection::close(conn).await.db()?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Location { path: options.get_filename().to_path_buf(), flags }
    };
    let write = location.open(false).lite()?;
    write.pragma_update(None, "journal_mode", "WAL").lite()?;
    // The writer keeps SQLite's default page cache (2 MiB), not a large one: when an insert
    // splits a B-tree page, SQLite renumbers the new pages through a scratch page number near
    // 1 GiB into the file, and the commit of that transaction then walks the whole page cache to
    // drop pages past the end of the file. With logins (small transactions, each splitting some
    // index page) a 64 MiB cache made that walk a third of every commit's time, on the one writer:
    // 13% fewer logins per second, for first imports at most a tenth faster (see BENCHMARKS.md).
    // Each write runs in a savepoint inside the shared transaction, and SQLite keeps the pages a
    // savepoint changes in a sub-journal, a temporary file by default: a write system call per
    // page, while every other writer waits. In memory instead; it is only ever needed to undo
    // a failed write before the commit, so durability does not depend on it.
    write.pragma_update(None, "temp_store", "MEMORY").lite()?;
    // What the connections say about their durability, once set.
    let mut read_back = vec![("the writer connection", durability_settings(&write).lite()?)];
    let checkpoints = if in_memory {
        for migration in MIGRATOR.iter() {
            write.execute_batch(&migration.sql).lite()?;
        }
        None
    } else {
        // WAL checkpoints on a thread of their own, not inside commits (`sqlite_writer.rs`).
        write.pragma_update(None, "wal_autocheckpoint", 0).lite()?;
        let conn = location.open(false).lite()?;
        read_back.push(("the checkpoint connection", durability_settings(&conn).lite()?));
        let checkpointer = Checkpointer::start(conn)
            .map_err(|e| Error::Internal(format!("starting the WAL checkpoint thread failed: {e}")))?;
        Some(checkpointer)
    };
    let read = ReadPool { location, idle: Mutex::new(Vec::new()) };
    if !in_memory {
        let mut pooled = read.take();
        read_back.push(("a read connection", durability_settings(pooled.connection().lite()?).lite()?));
        drop(pooled);
        durability::enforce(durability::check_sqlite(&read_back), durability)?;
    }
    Ok(SqlStore {
        db: Db::Sqlite { read, writer: GroupWriter::new(write, checkpoints)? },
        // One process writes through this store's writer; other writers (a command-line tool on
        // the same file) are bounded by the cache's maximum age.
        cache: Arc::new(crate::cache::ReadCache::new(true)),
        _stop: None,
    })
}

/// Reads back the settings that durability depends on.
fn durability_settings(conn: &Connection) -> rusqlite::Result<SqliteSettings> {
    Ok(SqliteSettings {
        journal_mode: conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?,
        synchronous: conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?,
    })
}

/// A name unique to this process and moment, for an in-memory database.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database opened as the server opens it reads back WAL and `synchronous=FULL` on the
    /// writer connection and on a pooled read connection (and `open` checked the checkpoint
    /// connection too, or it would have refused).
    #[tokio::test]
    async fn a_normal_start_reads_back_wal_and_full() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("workgate.db").display());
        let store = open(&url, Durability::Required).await.expect("a database on a local disk opens");
        let Db::Sqlite { read, writer } = &store.db else { panic!("a SQLite store") };
        let wanted = SqliteSettings { journal_mode: "wal".into(), synchronous: 2 };
        let on_writer = writer.write(|conn| durability_settings(conn).lite()).await.expect("writer reads");
        assert_eq!(on_writer, wanted);
        let mut pooled = read.take();
        let on_reader = durability_settings(pooled.connection().expect("read connection")).expect("reader reads");
        assert_eq!(on_reader, wanted);
    }

    /// An in-memory database (tests) keeps its journal in memory, and is not checked.
    #[tokio::test]
    async fn an_in_memory_database_is_not_checked() {
        let store = open("sqlite::memory:", Durability::Required).await.expect("in-memory database opens");
        let Db::Sqlite { writer, .. } = &store.db else { panic!("a SQLite store") };
        let settings = writer.write(|conn| durability_settings(conn).lite()).await.expect("writer reads");
        assert_eq!(settings.journal_mode, "memory");
    }
}

//! The PostgreSQL store: one database that any number of Workgate nodes share.
//!
//! Durability: PostgreSQL's own (`fsync` and `synchronous_commit` on, their defaults): a write is
//! acknowledged once its commit is on disk. At start, before migrating, `fsync`,
//! `synchronous_commit` and `full_page_writes` are read on a connection of the pool (a role, a
//! database or the URL's `options` may set `synchronous_commit` for Workgate's connections alone),
//! and a database that could lose acknowledged writes is refused (`durability.rs`).
//!
//! Concurrency: each write is one READ COMMITTED transaction. The queries are SQLite's
//! (`directory.rs`, `login.rs`); what SQLite's single writer guaranteed, they get here from
//! conditional updates, which PostgreSQL re-checks against the newest row, and from row locks
//! taken before a check that a write depends on (`sql::Dialect`). A transaction that PostgreSQL aborts to break a deadlock runs again.

use crate::cache::{ReadCache, Tables};
use crate::durability::{self, Durability, PostgresSettings};
use crate::errors::{SqlxResultExt, from_sqlx};
use crate::sql::{Conn, Row, Sql, is_retryable};
use crate::{Db, OpenError, SqlStore};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use workgate_domain::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections each node keeps to the database at most (one of them listens for other nodes' writes).
const POOL_SIZE: u32 = 17;
/// Runs of a transaction that PostgreSQL keeps aborting to break deadlocks, before giving up.
const ATTEMPTS: u32 = 3;

/// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/database`,
/// with libpq's parameters such as `sslmode`), checks its durability settings (see
/// `durability.rs` for `durability`) and applies the migrations it lacks.
pub async fn open(url: &str, durability: Durability) -> Result<SqlStore, OpenError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| Error::Internal(format!("invalid database URL: {e}")))?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .db()?;
    let checked = match durability_settings(&pool).await {
        Ok(read) => durability::enforce(durability::check_postgres(&read), durability).map_err(OpenError::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = checked {
        pool.close().await;
        return Err(e);
    }
    migrate(&options).await?;
    let channel = writes_channel(&pool).await?;
    let cache = Arc::new(ReadCache::new(false));
    let announce = Arc::new(Announcements::default());
    let (stop, stopped) = watch::channel(());
    tokio::spawn(listen(pool.clone(), channel.clone(), cache.clone(), stopped.clone()));
    tokio::spawn(announce_writes(pool.clone(), channel, announce.clone(), stopped));
    Ok(SqlStore { db: Db::Postgres { pool, announce }, cache, _stop: Some(stop) })
}

/// The channel on which the nodes of one database and schema announce their writes.
async fn writes_channel(pool: &PgPool) -> Result<String> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(pool).await.db()?;
    // A channel name is an identifier: at most 63 bytes.
    let mut channel = format!("workgate_writes_{schema}");
    while channel.len() > 63 {
        channel.pop();
    }
    Ok(channel)
}

/// Listens for the writes of every node (this one's too) and makes the cache stale at each; while
/// not listening, the cache is off (`cache.rs`). Reconnects every second after a failure; ends
/// when the store is dropped.
async fn listen(pool: PgPool, channel: String, cache: Arc<ReadCache>, mut stopped: watch::Receiver<()>) {
    loop {
        let connect = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            connected = connect => connected,
            _ = stopped.changed() => return,
        };
        match connected {
            Ok(mut listener) => {
                cache.set_live(true);
                loop {
                    tokio::select! {
                        heard = listener.try_recv() => match heard {
                            Ok(Some(heard)) => {
                                let bits = heard.payload().parse().unwrap_or(Tables::ALL.bits());
                                cache.invalidate(Tables::from_bits(bits));
                            }
                            Ok(None) | Err(_) => break,
                        },
                        _ = stopped.changed() => return,
                    }
                }
                cache.set_live(false);
                tracing::warn!(
                    "lost the connection that hears other nodes' writes; the token cache is off until it is back"
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for other nodes' writes; the token cache stays off"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The tables written since the last announcement, and the wake-up of the task that announces.
#[derive(Default)]
pub(crate) struct Announcements {
    pending: AtomicU64,
    wake: Notify,
}

impl Announcements {
    /// Queues `tables` for the next announcement (nothing when empty).
    pub(crate) fn tables(&self, tables: Tables) {
        if tables != Tables::NONE {
            self.pending.fetch_or(tables.bits(), Ordering::SeqCst);
            self.wake.notify_one();
        }
    }
}

/// Tells the other nodes which tables this one wrote: one `NOTIFY` per wake-up, so writes that
/// come while one is on its way are announced together by the next. Ends when the store is
/// dropped.
async fn announce_writes(
    pool: PgPool,
    channel: String,
    announce: Arc<Announcements>,
    mut stopped: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = announce.wake.notified() => {}
            _ = stopped.changed() => return,
        }
        let bits = announce.pending.swap(0, Ordering::SeqCst);
        if bits == 0 {
            continue;
        }
        if let Err(e) =
            sqlx::query("SELECT pg_notify($1, $2)").bind(&channel).bind(bits.to_string()).execute(&pool).await
        {
            tracing::warn!(error = %e, "cannot tell the other nodes of a write; their cached token checks expire within a second");
        }
    }
}

/// Reads the settings that durability depends on, as a connection of the pool sees them.
async fn durability_settings(pool: &PgPool) -> Result<PostgresSettings> {
    // `current_setting(name)` is `SHOW name` as a value, all three in one round trip.
    let (fsync, synchronous_commit, full_page_writes): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')",
    )
    .fetch_one(pool)
    .await
    .db()?;
    Ok(PostgresSettings { fsync, synchronous_commit, full_page_writes })
}

/// Applies the migrations exactly once, however many nodes start together on an empty database:
/// sqlx's PostgreSQL migrator takes a session advisory lock (`pg_advisory_lock`, keyed by the
/// database's name) before it reads which migrations are applied, and releases it only after
/// applying the rest, so the other nodes wait and then find nothing left to do. It runs on a
/// connection of its own that is closed afterwards: if a migration fails, the lock goes with the
/// connection instead of staying behind in a pool.
async fn migrate(options: &PgConnectOptions) -> Result<()> {
    let failed = |e: sqlx::migrate::MigrateError| Error::Internal(format!("migrating the database failed: {e}"));
    let mut conn = PgConnection::connect_with(options).await.db()?;
    MIGRATOR.run(&mut conn).await.map_err(failed)?;
    conn.close().await.db()
}

/// Runs `work` in one transaction, again if PostgreSQL aborted it to break a deadlock; with the
/// One statement as a transaction of its own, without `BEGIN` and `COMMIT` around it (one round
/// trip instead of three; as durable when it returns). Runs again, as [`write`] does, if the
/// database broke a deadlock by aborting it.
pub(crate) async fn write_alone(pool: &PgPool, q: Sql<'_>) -> Result<(Vec<Row>, Tables)> {
    let mut attempt = 1;
    loop {
        let mut conn = Conn::pg_pool(pool);
        let outcome = conn.fetch_all(q.clone()).await;
        if outcome.is_ok() || !conn.retryable || attempt >= ATTEMPTS {
            return outcome.map(|rows| (rows, conn.written));
        }
        attempt += 1;
        tracing::warn!(attempt, "PostgreSQL aborted a statement to break a deadlock; running it again");
    }
}
/// tables it wrote.
pub(crate) async fn write<T>(
    pool: &PgPool,
    work: impl AsyncFnOnce(&mut Conn<'_>) -> Result<T> + Clone,
) -> Result<(T, Tables)> {
    let mut attempt = 1;
    loop {
        let mut tx = pool.begin().await.db()?;
        let mut conn = Conn::pg(&mut tx);
        let outcome = work.clone()(&mut conn).await;
        let (mut retryable, written) = (conn.retryable, conn.written);
        drop(conn);
        let outcome = match outcome {
            Ok(value) => match tx.commit().await {
                Ok(()) => return Ok((value, written)),
                Err(e) => {
                    retryable = is_retryable(&e);
                    Err(from_sqlx(e))
                }
            },
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        if !retryable || attempt >= ATTEMPTS {
            return outcome;
        }
        attempt += 1;
        tracing::warn!(attempt, "PostgreSQL aborted a transaction to break a deadlock; running it again");
    }
}

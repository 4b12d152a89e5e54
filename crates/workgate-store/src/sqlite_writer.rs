//! Group commit for SQLite.
//!
//! With `synchronous=FULL` every commit waits for the disk (an fsync of the WAL: milliseconds on
//! ordinary disks), so one transaction per request would cap the server at a few hundred writes a
//! second. Instead, writes from concurrent requests share transactions: each write runs on the one
//! writer connection inside its own `SAVEPOINT` (so a failing write undoes only itself), and the
//! last writer in line commits for everyone who wrote before it. Every caller returns only after
//! the commit that contains its write, so an acknowledged write is durable; if that commit fails,
//! every write in it reports the failure.

use crate::errors::SqliteResultExt;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};
use workgate_domain::{Error, Result};

/// A transaction is committed at the latest after this many writes…
const MAX_WRITES_PER_COMMIT: usize = 256;
/// …or when it has been open this long, even if more writers are waiting.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(20);

struct Writer {
    conn: Connection,
    /// A transaction is open on `conn`.
    open: bool,
    opened_at: Instant,
    writes: usize,
    /// Number of the transaction that is open (or will open next).
    epoch: u64,
    /// A write's savepoint is open: if its caller was cancelled mid-write, the next writer
    /// finds this still set and undoes the orphaned savepoint.
    in_savepoint: bool,
    /// The latest failed commits, so that a writer who learns late still hears of its failure.
    failures: std::collections::VecDeque<(u64, String)>,
}

/// Counts a writer in the queue for as long as it waits, even if it is cancelled while waiting.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Queued(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The outcome of a commit, published to the writers who wait for it.
#[derive(Clone)]
struct Committed {
    epoch: u64,
    error: Option<String>,
}

pub(crate) struct GroupWriter {
    writer: Mutex<Writer>,
    /// Writers waiting for the connection: while there are some, the holder leaves the commit to them.
    queued: AtomicUsize,
    committed: watch::Sender<Committed>,
}

impl GroupWriter {
    pub(crate) fn new(conn: Connection) -> Arc<Self> {
        let (committed, _) = watch::channel(Committed { epoch: 0, error: None });
        Arc::new(GroupWriter {
            writer: Mutex::new(Writer {
                conn,
                open: false,
                opened_at: Instant::now(),
                writes: 0,
                epoch: 1,
                in_savepoint: false,
                failures: Default::default(),
            }),
            queued: AtomicUsize::new(0),
            committed,
        })
    }

    /// Runs `work` as one atomic write and returns once it is durable. `work` must not hold on to
    /// the connection, and sees the writes of earlier callers (committed or about to be).
    pub(crate) async fn write<T>(&self, work: impl AsyncFnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut committed = self.committed.subscribe();
        let queued = Queued::join(&self.queued);
        let mut w = self.writer.lock().await;
        drop(queued);
        if w.in_savepoint {
            // A previous caller was cancelled inside its write: undo what it left half done.
            w.conn.execute_batch("ROLLBACK TO write; RELEASE write").lite()?;
            w.in_savepoint = false;
        }
        if !w.open {
            w.conn.execute_batch("BEGIN IMMEDIATE").lite()?;
            w.open = true;
            w.opened_at = Instant::now();
            w.writes = 0;
        }
        w.conn.execute_batch("SAVEPOINT write").lite()?;
        w.in_savepoint = true;
        let result = work(&mut w.conn).await;
        let ended = if result.is_ok() {
            w.conn.execute_batch("RELEASE write")
        } else {
            w.conn.execute_batch("ROLLBACK TO write; RELEASE write")
        };
        w.in_savepoint = false;
        if let Err(e) = ended {
            // The connection is in an unknown state: abandon the whole transaction.
            let _ = w.conn.execute_batch("ROLLBACK");
            let epoch = w.epoch;
            w.open = false;
            w.epoch += 1;
            w.note_failure(epoch, e.to_string());
            self.committed.send_replace(Committed { epoch, error: Some(e.to_string()) });
            return Err(Error::Internal(format!("savepoint failed: {e}")));
        }
        w.writes += 1;
        let my_epoch = w.epoch;
        let others_waiting = self.queued.load(Ordering::SeqCst) > 0;
        let due = w.writes >= MAX_WRITES_PER_COMMIT || w.opened_at.elapsed() >= MAX_COMMIT_DELAY;
        if others_waiting && !due {
            // Someone after us will commit our write with theirs.
            drop(w);
            let wait = async { committed.wait_for(|c| c.epoch >= my_epoch).await.map(|c| c.clone()) };
            if let Ok(Ok(outcome)) = tokio::time::timeout(MAX_COMMIT_DELAY * 2, wait).await {
                return match outcome.error {
                    None => result,
                    Some(e) => Err(Error::Internal(format!("commit failed: {e}"))),
                };
            }
            // Whoever was to commit went away (cancelled): commit ourselves if nobody has.
            w = self.writer.lock().await;
            if w.epoch != my_epoch || !w.open {
                return match w.failures.iter().find(|(epoch, _)| *epoch == my_epoch) {
                    None => result,
                    Some((_, e)) => Err(Error::Internal(format!("commit failed: {e}"))),
                };
            }
            if w.in_savepoint {
                w.conn.execute_batch("ROLLBACK TO write; RELEASE write").lite()?;
                w.in_savepoint = false;
            }
        }
        // The commit waits for the disk (an fsync): the thread is handed over to it, and the
        // runtime's other tasks move on elsewhere meanwhile. Writers that arrive during it queue
        // for the connection and share the next commit.
        let commit = wait_for_disk(|| w.conn.execute_batch("COMMIT"));
        let error = match &commit {
            Ok(()) => None,
            Err(e) => {
                let _ = w.conn.execute_batch("ROLLBACK");
                Some(e.to_string())
            }
        };
        w.open = false;
        w.epoch += 1;
        if let Some(e) = &error {
            w.note_failure(my_epoch, e.clone());
        }
        self.committed.send_replace(Committed { epoch: my_epoch, error: error.clone() });
        drop(w);
        match error {
            None => result,
            Some(e) => Err(Error::Internal(format!("commit failed: {e}"))),
        }
    }
}

/// Runs `f`, which blocks on the disk, without holding up the runtime's other tasks: on a
/// multi-threaded runtime they move to another thread meanwhile (a current-thread runtime, as in
/// tests, simply waits).
fn wait_for_disk<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Writer {
    fn note_failure(&mut self, epoch: u64, error: String) {
        if self.failures.len() == 16 {
            self.failures.pop_front();
        }
        self.failures.push_back((epoch, error));
    }
}

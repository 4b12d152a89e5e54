//! Group commit for SQLite.
//!
//! With `synchronous=FULL` every commit waits for the disk (an fsync of the WAL: milliseconds on
//! ordinary disks), so one transaction per request would cap the server at a few hundred writes a
//! second. Instead, writes from concurrent requests share transactions: each write runs on the one
//! writer connection inside its own `SAVEPOINT` (so a failing write undoes only itself; the first
//! write of a transaction needs none, the transaction's `ROLLBACK` undoes it alone), and the
//! last writer in line commits for everyone who wrote before it. WAL checkpoints run on a thread
//! of their own ([`Checkpointer`]), not inside commits; the writer steps in only to let the WAL
//! start over when it has grown (see [`WAL_RESTART_FRAMES`]). Every caller returns only after
//! the commit that contains its write, so an acknowledged write is durable; if that commit fails,
//! every write in it reports the failure.

use crate::errors::SqliteResultExt;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
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
    /// A write is under way: if its caller was cancelled mid-write, the next writer finds this
    /// still set and undoes what it left half done.
    in_write: Option<Undo>,
    /// The latest failed commits, so that a writer who learns late still hears of its failure.
    failures: std::collections::VecDeque<(u64, String)>,
}

/// How a write is undone if it fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// `ROLLBACK TO` its savepoint: the transaction holds the writes of others before it.
    Savepoint,
    /// `ROLLBACK` of the whole transaction, which holds this write only. Such a write (the
    /// first of its transaction) needs no savepoint, whose journal costs a copy of every page the
    /// write changes and, in SQLite, a walk through that journal at the end of every statement:
    /// with a bulk import's batch of thousands of rows, a fifth of the batch's CPU.
    Transaction,
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
    /// Copies the WAL into the database file after commits, on a thread of its own.
    checkpoints: Option<Checkpointer>,
}

/// Least time between two checkpoints: each one writes the pages committed since the last and
/// waits for the disk, so many small commits (logins) share one checkpoint. Short, because a WAL
/// left to grow slows every read and write under steady load (measured with 32 clients logging
/// in: about 2,060 logins/s at 20 ms, 1,880 at 100 ms, 1,680 with a 1 s pause).
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(20);

/// WAL checkpoints away from the commits. SQLite's automatic checkpoint runs inside the commit
/// that takes the WAL past 1,000 pages: that commit, and every writer queued behind it, waits
/// while the WAL is copied into the database file and the file is synced (with a bulk import's
/// large batches, nearly every commit). The writer connection has automatic checkpoints off
/// (`wal_autocheckpoint=0`) and nudges this thread after each commit instead, which runs a
/// `PASSIVE` checkpoint on a connection of its own while the writer goes on (WAL lets both run
/// at once; the next write starts the WAL over once it has been copied whole). Durability does
/// not depend on it: a commit is durable once its WAL frames are synced (`synchronous=FULL`),
/// and the checkpoint syncs the database file before the WAL may be overwritten.
pub(crate) struct Checkpointer {
    nudge: SyncSender<()>,
    /// Frames in the WAL at the latest checkpoint, copied into the database file or not.
    wal_frames: Arc<AtomicI64>,
}

/// A WAL this long (frames of one page, 4 KiB each: 16 MiB) is copied whole by the writer itself,
/// so that the next transaction writes it from its start again. The checkpoint thread alone never
/// gets there under a steady load: it copies what was committed when it began, and by the time
/// it is done newer commits follow, so SQLite never finds the WAL copied whole and appends for
/// ever (15 seconds of the login benchmark left WALs of 0.5 to 1.1 GiB). A growing WAL also costs
/// every commit: each write to a new part of the file has the kernel allocate and zero its pages,
/// where a WAL started over rewrites pages it already holds.
const WAL_RESTART_FRAMES: i64 = 4096;

impl Checkpointer {
    /// Starts the thread, which checkpoints with `conn` until the writer is dropped.
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        let (nudge, nudged) = sync_channel::<()>(1);
        let wal_frames = Arc::new(AtomicI64::new(0));
        let frames = wal_frames.clone();
        std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
            while nudged.recv().is_ok() {
                match passive_checkpoint(&conn) {
                    Ok((wal, _)) => frames.store(wal, Ordering::Relaxed),
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                }
                std::thread::sleep(CHECKPOINT_PAUSE);
            }
        })?;
        Ok(Checkpointer { nudge, wal_frames })
    }

    /// Asks for a checkpoint; one already asked for and not started yet covers this one too.
    fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }
}

/// Copies into the database file what no reader still needs from the WAL, without waiting for
/// anyone; answers the frames in the WAL and those copied (SQLite answers -1 for both when
/// another checkpoint is under way).
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(1)?, row.get(2)?)))
}

impl GroupWriter {
    pub(crate) fn new(conn: Connection, checkpoints: Option<Checkpointer>) -> Arc<Self> {
        let (committed, _) = watch::channel(Committed { epoch: 0, error: None });
        Arc::new(GroupWriter {
            writer: Mutex::new(Writer {
                conn,
                open: false,
                opened_at: Instant::now(),
                writes: 0,
                epoch: 1,
                in_write: None,
                failures: Default::default(),
            }),
            queued: AtomicUsize::new(0),
            committed,
            checkpoints,
        })
    }

    /// Runs `work` as one atomic write and returns once it is durable. `work` must not hold on to
    /// the connection, and sees the writes of earlier callers (committed or about to be).
    pub(crate) async fn write<T>(&self, work: impl AsyncFnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut committed = self.committed.subscribe();
        let queued = Queued::join(&self.queued);
        let mut w = self.writer.lock().await;
        drop(queued);
        // A previous caller was cancelled inside its write: undo what it left half done.
        w.undo_cancelled()?;
        if !w.open {
            if !w.conn.is_autocommit() {
                // A transaction left behind by a failed `ROLLBACK`.
                let _ = w.conn.execute_batch("ROLLBACK");
            }
            w.conn.execute_batch("BEGIN IMMEDIATE").lite()?;
            w.open = true;
            w.opened_at = Instant::now();
            w.writes = 0;
        }
        // Every write, failed or not, counts in `writes`: none yet means that nobody else's
        // write is in the transaction, nor anybody waiting for its commit.
        let undo = if w.writes == 0 { Undo::Transaction } else { Undo::Savepoint };
        if undo == Undo::Savepoint {
            w.conn.execute_batch("SAVEPOINT write").lite()?;
        }
        w.in_write = Some(undo);
        let result = work(&mut w.conn).await;
        let ended = match (undo, result.is_ok()) {
            (Undo::Savepoint, true) => w.conn.execute_batch("RELEASE write"),
            (Undo::Savepoint, false) => w.conn.execute_batch("ROLLBACK TO write; RELEASE write"),
            (Undo::Transaction, true) => Ok(()),
            (Undo::Transaction, false) => {
                // Alone in its transaction: nothing to commit, nobody to tell.
                w.in_write = None;
                w.open = false;
                // (SQLite may have rolled it back already, after some errors.)
                let _ = w.conn.execute_batch("ROLLBACK");
                return result;
            }
        };
        w.in_write = None;
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
            w.undo_cancelled()?;
            if !w.open {
                // Cannot happen (a write alone in its transaction has nobody waiting for it).
                return Err(Error::Internal("a write was undone before its commit".into()));
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
        // After a commit that stands, the WAL is checkpointed.
        let checkpoints = self.checkpoints.as_ref().filter(|_| error.is_none());
        if let Some(checkpoints) = checkpoints
            && checkpoints.wal_frames.load(Ordering::Relaxed) >= WAL_RESTART_FRAMES
        {
            // Between transactions, holding the writer: nothing is appended while this copies
            // the rest, so the WAL is copied whole and the next transaction starts it over
            // (unless a reader still reads an older part of it: then a later commit tries again).
            // Those who left their commit to this one have their answer already.
            match wait_for_disk(|| passive_checkpoint(&w.conn)) {
                Ok((wal, copied)) if wal >= 0 && wal == copied => checkpoints.wal_frames.store(0, Ordering::Relaxed),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
        }
        drop(w);
        if let Some(checkpoints) = checkpoints {
            checkpoints.nudge();
        }
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
    /// Undoes the write of a caller cancelled in the middle of it, if there is one.
    fn undo_cancelled(&mut self) -> Result<()> {
        match self.in_write.take() {
            None => {}
            Some(Undo::Savepoint) => self.conn.execute_batch("ROLLBACK TO write; RELEASE write").lite()?,
            Some(Undo::Transaction) => {
                self.open = false;
                self.conn.execute_batch("ROLLBACK").lite()?;
            }
        }
        Ok(())
    }

    fn note_failure(&mut self, epoch: u64, error: String) {
        if self.failures.len() == 16 {
            self.failures.pop_front();
        }
        self.failures.push_back((epoch, error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).expect("open");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        conn.pragma_update(None, "journal_mode", "WAL").expect("WAL");
        conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
        conn
    }

    /// Writes that never pause, readers reading all along (as under a login benchmark): the WAL
    /// is started over again and again, its file stays near the size at which it is copied whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wal_under_writes_that_never_pause_stays_bounded() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("steady.db");
        let write = open(&path);
        write.pragma_update(None, "wal_autocheckpoint", 0).expect("autocheckpoint off");
        write
            .execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE, v BLOB NOT NULL)")
            .expect("table");
        let writer = GroupWriter::new(write, Some(Checkpointer::start(open(&path)).expect("checkpoint thread")));

        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (stop, conn) = (stop.clone(), open(&path));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _: i64 = conn.query_row("SELECT count(*) FROM rows", [], |row| row.get(0)).expect("read");
                    }
                })
            })
            .collect();
        // Rows under random keys: each write changes index pages all over the file, as logins do.
        let writers: Vec<_> = (0..16u64)
            .map(|task| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..1_000u64 {
                        let key = (task * 1_000 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
                        writer
                            .write(async |conn| {
                                conn.execute("INSERT INTO rows (k, v) VALUES (?1, ?2)", (&key[..], &[7u8; 300][..]))
                                    .lite()
                            })
                            .await
                            .expect("write");
                    }
                })
            })
            .collect();
        for task in writers {
            task.await.expect("writer task");
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.join().expect("reader");
        }

        let wal = std::fs::metadata(dir.path().join("steady.db-wal")).expect("the WAL").len();
        let frame = 4096 + 24;
        let written: i64 = open(&path).query_row("SELECT count(*) FROM rows", [], |row| row.get(0)).expect("count");
        assert_eq!(written, 16_000);
        assert!(
            wal <= 2 * WAL_RESTART_FRAMES as u64 * frame,
            "the WAL grew to {} MiB (copied whole at {} MiB)",
            wal >> 20,
            (WAL_RESTART_FRAMES as u64 * frame) >> 20
        );
    }
}

//! Group commit for SQLite, on a thread of its own.
//!
//! With `synchronous=FULL` every commit waits for the disk (an fsync of the WAL: milliseconds on
//! ordinary disks), so one transaction per request would cap the server at a few hundred writes a
//! second. Instead, writes from concurrent requests share transactions. One thread owns the writer
//! connection and runs the writes handed to it back to back: each write is a job that owns what it
//! needs, queued by the request that asked for it. The thread opens a transaction, runs the first
//! job (a failed one undone by the transaction's `ROLLBACK`, as nothing else is in it), then every
//! job that is waiting, each inside its own `SAVEPOINT` (so that a failing write undoes only
//! itself), and commits when no job is left waiting or the transaction is full. Every job's
//! answer is given only after the commit that contains it, so an acknowledged write is durable;
//! if that commit fails, every write in it reports the failure.
//!
//! Why a thread and not a lock that request tasks take turns on: the writer then never waits for
//! a task to be scheduled before it goes on, and the runtime's threads keep the HTTP work. A
//! request that is cancelled after it queued its write does not take the write back: it is
//! atomic either way, and runs to its end unseen, as a write whose answer was lost would.
//!
//! WAL checkpoints run on another thread ([`Checkpointer`]), not inside commits; the writer steps
//! in only to let the WAL start over when it has grown (see [`WAL_RESTART_FRAMES`]).

use rusqlite::Connection;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use workgate_domain::{Error, Result};

/// A transaction is committed at the latest after this many writes…
const MAX_WRITES_PER_COMMIT: usize = 256;
/// …or when it has been open this long, even if more writes are waiting.
const MAX_COMMIT_DELAY: Duration = Duration::from_millis(20);

/// The writer thread and the queue of writes handed to it.
pub(crate) struct GroupWriter {
    /// `None` once the writer is being dropped: the thread then runs what is queued and ends.
    jobs: Option<Sender<Box<dyn Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A write handed to the writer thread.
trait Job: Send {
    /// Runs the write on the connection, inside the open transaction; answers whether it
    /// succeeded (a failed one is undone) and how to give its answer once the commit is known.
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran;
    /// Gives up the write without running it.
    fn fail(self: Box<Self>, error: String);
}

struct Ran {
    ok: bool,
    answer: Box<dyn Answer>,
}

/// A write's answer, held until the commit that contains it.
trait Answer: Send {
    /// `commit_error`: why the transaction that contains the write did not commit.
    fn give(self: Box<Self>, commit_error: Option<&str>);
}

struct Write<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for Write<F, T>
where
    F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran {
        let Write { work, reply } = *self;
        // A write that panics (a bug) is undone like one that failed; its caller hears of it.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(Error::Internal("a write panicked".into())));
        Ran { ok: result.is_ok(), answer: Box::new(Reply { result, reply }) }
    }

    fn fail(self: Box<Self>, error: String) {
        let _ = self.reply.send(Err(Error::Internal(error)));
    }
}

struct Reply<T> {
    result: Result<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send> Answer for Reply<T> {
    fn give(self: Box<Self>, commit_error: Option<&str>) {
        let answer = match (commit_error, self.result) {
            (Some(e), Ok(_)) => Err(Error::Internal(format!("commit failed: {e}"))),
            (_, result) => result,
        };
        // The caller may have gone away (a cancelled request): nobody to tell.
        let _ = self.reply.send(answer);
    }
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
    /// Starts the writer thread, which owns `conn` until the writer is dropped.
    pub(crate) fn new(conn: Connection, checkpoints: Option<Checkpointer>) -> Result<Arc<Self>> {
        let (jobs, queue) = channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writes(conn, queue, checkpoints))
            .map_err(|e| Error::Internal(format!("starting the SQLite writer thread failed: {e}")))?;
        Ok(Arc::new(GroupWriter { jobs: Some(jobs), thread: Some(thread) }))
    }

    /// Runs `work` as one atomic write on the writer thread and returns once it is durable.
    /// `work` sees the writes queued before it (committed or about to be).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let queued = self.jobs.as_ref().is_some_and(|jobs| jobs.send(Box::new(Write { work, reply })).is_ok());
        if !queued {
            return Err(Error::Internal("the SQLite writer has stopped".into()));
        }
        answer.await.unwrap_or_else(|_| Err(Error::Internal("the SQLite writer stopped before answering".into())))
    }
}

impl Drop for GroupWriter {
    /// Lets the thread finish what is queued and close the connection before the store is gone,
    /// so that the database file can be opened again at once.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: transactions of the queued writes, one after another, until the queue's
/// sender is dropped.
fn run_writes(mut conn: Connection, queue: Receiver<Box<dyn Job>>, checkpoints: Option<Checkpointer>) {
    while let Ok(first) = queue.recv() {
        if !conn.is_autocommit() {
            // A transaction left behind by a failed `ROLLBACK`.
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            first.fail(format!("could not begin a transaction: {e}"));
            continue;
        }
        let opened = Instant::now();
        // The first write needs no savepoint: alone in the transaction, it is undone by `ROLLBACK`.
        // (A savepoint's journal costs a copy of every page the write changes, and a walk through
        // it at the end of every statement: with a bulk import's batch, a fifth of its CPU.)
        let Ran { ok, answer } = first.run(&mut conn);
        if !ok {
            let _ = conn.execute_batch("ROLLBACK");
            answer.give(None);
            continue;
        }
        let mut answers = vec![answer];
        let mut broken = None;
        while answers.len() < MAX_WRITES_PER_COMMIT && opened.elapsed() < MAX_COMMIT_DELAY {
            let Ok(job) = queue.try_recv() else { break };
            if let Err(e) = conn.execute_batch("SAVEPOINT write") {
                job.fail(format!("could not begin a write: {e}"));
                broken = Some(e.to_string());
                break;
            }
            let Ran { ok, answer } = job.run(&mut conn);
            let ended = if ok {
                conn.execute_batch("RELEASE write")
            } else {
                conn.execute_batch("ROLLBACK TO write; RELEASE write")
            };
            // A failed write's answer waits for the commit too: its caller may read again and
            // try again, and must then see the writes that were before it (a conflicting edit).
            answers.push(answer);
            if let Err(e) = ended {
                // The connection is in an unknown state: the whole transaction is abandoned.
                broken = Some(e.to_string());
                break;
            }
        }
        let error = match broken {
            Some(e) => Some(e),
            None => conn.execute_batch("COMMIT").err().map(|e| e.to_string()),
        };
        if let Some(e) = &error {
            tracing::error!(error = %e, writes = answers.len(), "a SQLite transaction failed; its writes report it");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for answer in answers {
            answer.give(error.as_deref());
        }
        // After a commit that stands, the WAL is checkpointed.
        let Some(checkpoints) = checkpoints.as_ref().filter(|_| error.is_none()) else { continue };
        if checkpoints.wal_frames.load(Ordering::Relaxed) >= WAL_RESTART_FRAMES {
            // Between transactions: nothing is appended while this copies the rest, so the WAL is
            // copied whole and the next transaction starts it over (unless a reader still reads
            // an older part of it: then a later commit tries again). The writes of the commit
            // have their answers already.
            match passive_checkpoint(&conn) {
                Ok((wal, copied)) if wal >= 0 && wal == copied => checkpoints.wal_frames.store(0, Ordering::Relaxed),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
        }
        checkpoints.nudge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::SqliteResultExt;
    use std::sync::atomic::AtomicBool;

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).expect("open");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        conn.pragma_update(None, "journal_mode", "WAL").expect("WAL");
        conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
        conn
    }

    /// Many writes at once, some failing and one panicking: each failed write is undone alone and
    /// answered with its own error, the others are kept, and the writer goes on afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_or_panicking_write_is_undone_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("mixed.db");
        let conn = open(&path);
        conn.execute_batch("CREATE TABLE rows (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").expect("table");
        let writer = GroupWriter::new(conn, None).expect("writer thread");
        let writes: Vec<_> = (0..60i64)
            .map(|k| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .write(move |conn| {
                            conn.execute("INSERT INTO rows (k, v) VALUES (?1, 'kept')", [k]).lite()?;
                            match k % 10 {
                                3 => Err(Error::Conflict(format!("write {k} refused"))),
                                7 if k == 17 => panic!("write {k} panics"),
                                _ => Ok(k),
                            }
                        })
                        .await
                })
            })
            .collect();
        for (k, write) in (0..60i64).zip(writes) {
            let answer = write.await.expect("writer task");
            match k % 10 {
                3 => assert!(matches!(answer, Err(Error::Conflict(_))), "write {k}: {answer:?}"),
                7 if k == 17 => assert!(matches!(answer, Err(Error::Internal(_))), "write {k}: {answer:?}"),
                _ => assert_eq!(answer.expect("a write that succeeds"), k),
            }
        }
        let after = writer.write(|conn| conn.execute("INSERT INTO rows (k, v) VALUES (100, 'after')", []).lite()).await;
        assert_eq!(after.expect("the writer goes on"), 1);
        drop(writer);
        let kept: Vec<i64> = open(&path)
            .prepare("SELECT k FROM rows ORDER BY k")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("rows");
        let expected: Vec<i64> = (0..60).filter(|k| k % 10 != 3 && *k != 17).chain([100]).collect();
        assert_eq!(kept, expected);
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
        let writer = GroupWriter::new(write, Some(Checkpointer::start(open(&path)).expect("checkpoint thread")))
            .expect("writer thread");

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
                            .write(move |conn| {
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

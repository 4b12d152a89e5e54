//! A per-node cache of what token checks read: the session, member and enterprise behind an access
//! token (every signed-in request), an app's token (introspection) and with its member and
//! enterprise (userinfo), and an app with its secret's hash (client authentication). Exact under writes, so revocation stays exact:
//!
//! - Every entry carries the *epoch* read before the database was: any write of this node moves the
//!   epoch on after its commit and before it is acknowledged, so an entry read before or during a
//!   write never answers after it. (A reader that read the epoch before a write and the database
//!   after it stores a correct entry under the old epoch: it is merely not used.)
//! - On PostgreSQL, other nodes' writes: each node announces its writes (`NOTIFY`, coalesced) and
//!   listens for the others' (`LISTEN`), moving its epoch on when one arrives, within milliseconds.
//!   While the listening connection is down, nothing is cached or served from the cache.
//! - Whatever else writes to the database (a command-line tool on the same SQLite file, a node
//!   that crashed before announcing), no entry is served more than [`MAX_AGE`] after it was read.
//!
//! Only found records are kept (a spray of made-up tokens fills nothing), at most [`CAPACITY`]
//! per kind; a full shelf is emptied.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use workgate_domain::oidc::apps::App;
use workgate_domain::oidc::{AppToken, AppTokenHolder};
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::AccessRecord;

/// The longest an entry answers, whatever the epochs say.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1);
/// Entries per kind before a shelf is emptied.
const CAPACITY: usize = 100_000;

/// The cache of one store.
pub(crate) struct ReadCache {
    epoch: AtomicU64,
    /// Whether this node hears every write that matters (false on PostgreSQL while not listening).
    live: AtomicBool,
    pub(crate) access: Shelf<String, AccessRecord>,
    pub(crate) app_tokens: Shelf<String, AppToken>,
    pub(crate) holders: Shelf<String, AppTokenHolder>,
    pub(crate) clients: Shelf<String, (App, Option<SecretHash>)>,
}

/// The epoch read before a database read, to file what it found under.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

impl ReadCache {
    /// `live`: whether every write is heard from the start (a single node); a PostgreSQL store
    /// starts not live, until its listener is connected.
    pub(crate) fn new(live: bool) -> Self {
        ReadCache {
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(live),
            access: Shelf::default(),
            app_tokens: Shelf::default(),
            holders: Shelf::default(),
            clients: Shelf::default(),
        }
    }

    /// Makes every entry stale: called after each write commits, before it is acknowledged, and
    /// when another node announces one.
    pub(crate) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether other nodes' writes are heard now; every change also invalidates.
    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
        self.invalidate();
    }

    /// The ticket for a read about to start; `None` while entries may not be kept.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        self.live.load(Ordering::SeqCst).then(|| Ticket(self.epoch.load(Ordering::SeqCst)))
    }

    fn current(&self, epoch: u64, read_at: Instant) -> bool {
        self.live.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == epoch && read_at.elapsed() < MAX_AGE
    }
}

/// The entries of one kind.
pub(crate) struct Shelf<K, V> {
    entries: Mutex<HashMap<K, (u64, Instant, V)>>,
}

impl<K, V> Default for Shelf<K, V> {
    fn default() -> Self {
        Shelf { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V: Clone> Shelf<K, V> {
    /// The entry for `key`, if it is still current.
    pub(crate) fn get(&self, cache: &ReadCache, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (epoch, read_at, value) = entries.get(key)?;
        cache.current(*epoch, *read_at).then(|| value.clone())
    }

    /// Keeps what a read under `ticket` found.
    pub(crate) fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (ticket.0, Instant::now(), value));
    }
}

/// Reads through `shelf`: the current entry for `key`, or what `load` finds (kept when found).
pub(crate) async fn read_through<K: Hash + Eq, V: Clone>(
    cache: &ReadCache,
    shelf: &Shelf<K, V>,
    key: K,
    load: impl Future<Output = workgate_domain::Result<Option<V>>>,
) -> workgate_domain::Result<Option<V>> {
    if let Some(found) = shelf.get(cache, &key) {
        return Ok(Some(found));
    }
    // Before the read: a write that commits from here on moves the epoch past this ticket.
    let ticket = cache.ticket();
    let loaded = load.await?;
    if let (Some(ticket), Some(value)) = (ticket, &loaded) {
        shelf.put(ticket, key, value.clone());
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_after_the_ticket_makes_the_entry_unused() {
        let cache = ReadCache::new(true);
        let shelf: Shelf<String, i32> = Shelf::default();
        let ticket = cache.ticket().expect("live");
        cache.invalidate(); // a write commits while the read runs
        shelf.put(ticket, "a".into(), 1);
        assert_eq!(shelf.get(&cache, &"a".into()), None, "read before the write: never served after it");
        let ticket = cache.ticket().expect("live");
        shelf.put(ticket, "a".into(), 2);
        assert_eq!(shelf.get(&cache, &"a".into()), Some(2));
        cache.invalidate();
        assert_eq!(shelf.get(&cache, &"a".into()), None);
    }

    #[test]
    fn nothing_is_kept_or_served_while_not_live() {
        let cache = ReadCache::new(false);
        assert!(cache.ticket().is_none());
        cache.set_live(true);
        let shelf: Shelf<String, i32> = Shelf::default();
        shelf.put(cache.ticket().expect("live"), "a".into(), 1);
        assert_eq!(shelf.get(&cache, &"a".into()), Some(1));
        cache.set_live(false);
        assert_eq!(shelf.get(&cache, &"a".into()), None);
    }
}

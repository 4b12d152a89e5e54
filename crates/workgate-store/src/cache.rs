//! A per-node cache of what token checks read: the session, member and enterprise behind an access
//! token (every signed-in request), an app's token (introspection) and with its member and
//! enterprise (userinfo), an app with its secret's hash (client authentication), the ID-token
//! signing keys, and an enterprise's policy (every login step). Exact under writes, so revocation
//! stays exact:
//!
//! - Each table an entry is read from has an *epoch*; every entry carries the epochs of its tables
//!   as read before the database was. A write moves on the epochs of the tables its statements
//!   wrote (`INSERT INTO`, `UPDATE`, `DELETE FROM`, read from each statement's text; a writing
//!   statement whose table cannot be read moves them all) after its commit and before it is
//!   acknowledged, so an entry read before or during a write never answers after it. (A reader
//!   that read the epochs before a write and the database after it stores a correct entry under
//!   old epochs: it is merely not used.)
//! - On PostgreSQL, other nodes' writes: each node announces the tables it wrote (`NOTIFY`,
//!   coalesced) and listens for the others' (`LISTEN`), moving those epochs on when one arrives,
//!   within milliseconds.
//!   While the listening connection is down, nothing is cached or served from the cache.
//! - Whatever else writes to the database (a command-line tool on the same SQLite file, a node
//!   that crashed before announcing), no entry is served more than [`MAX_AGE`] after it was read.
//!
//! Only found records are kept (a spray of made-up tokens fills nothing), except that an
//! enterprise without a policy of its own is kept as such (the common case; only enterprises a
//! login or an admin has reached are asked for), at most [`CAPACITY`]
//! per kind: a full shelf first drops the entries older than [`MAX_AGE`] (which answer nothing
//! any more), and is emptied if that is not enough. A shelf so holds about the tokens used in the
//! last second, a few megabytes at most.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use workgate_domain::oidc::apps::App;
use workgate_domain::oidc::{AppToken, AppTokenHolder, SigningKey};
use workgate_domain::policy::StoredPolicy;
use workgate_domain::secret::SecretHash;
use workgate_domain::sessions::AccessRecord;

/// A set of the tables entries are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tables(u64);

/// The tables entries are read from, in the order of their bits.
const TABLES: [&str; 8] =
    ["SESSIONS", "MEMBERS", "ENTERPRISES", "OIDC_TOKENS", "OIDC_GRANTS", "APPS", "SIGNING_KEYS", "POLICIES"];

impl Tables {
    pub(crate) const NONE: Tables = Tables(0);
    pub(crate) const ALL: Tables = Tables((1 << TABLES.len()) - 1);

    /// The table `name` (in any case), if it is one of [`TABLES`].
    fn bit(name: &str) -> Tables {
        TABLES.iter().position(|t| t.eq_ignore_ascii_case(name)).map_or(Tables::NONE, |i| Tables(1 << i))
    }

    /// The table `name` and those its deletes cascade to (`ON DELETE CASCADE` in the schema: an
    /// app's grants, a grant's tokens), so that a write to it makes their entries stale too.
    fn named(name: &str) -> Tables {
        let cascades: &[&str] = if name.eq_ignore_ascii_case("APPS") {
            &["OIDC_GRANTS", "OIDC_TOKENS"]
        } else if name.eq_ignore_ascii_case("OIDC_GRANTS") {
            &["OIDC_TOKENS"]
        } else {
            &[]
        };
        Tables(cascades.iter().fold(Tables::bit(name).0, |bits, t| bits | Tables::bit(t).0))
    }

    fn of(names: &[&str]) -> Tables {
        Tables(names.iter().fold(0, |bits, name| bits | Tables::bit(name).0))
    }

    pub(crate) fn insert(&mut self, other: Tables) {
        self.0 |= other.0;
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    pub(crate) fn from_bits(bits: u64) -> Tables {
        Tables(bits & Tables::ALL.0)
    }

    /// The tables of ours a statement writes: the name after `INTO`, after `UPDATE` (not the
    /// `FOR UPDATE` of a lock, nor `DO UPDATE` of an upsert, which writes the `INTO` table) and
    /// after `DELETE FROM`. A statement that writes (it starts with `INSERT`, `UPDATE`, `DELETE`,
    /// `REPLACE` or `WITH`) but names no table that way counts as writing them all.
    ///
    /// Read for every statement of every write, so without copying the text: the words are
    /// compared as they stand, in any case.
    pub(crate) fn written_by(sql: &str) -> Tables {
        let mut words =
            sql.split(|c: char| c.is_whitespace() || c == '(' || c == ',' || c == ';').filter(|w| !w.is_empty());
        let first = words.next();
        if first.is_some_and(|w| w.eq_ignore_ascii_case("SELECT")) {
            // Reads (and the row locks of `FOR UPDATE`) write nothing.
            return Tables::NONE;
        }
        let writes = first.is_some_and(|w| {
            ["INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"].iter().any(|k| w.eq_ignore_ascii_case(k))
        });
        let mut tables = Tables::NONE;
        let mut named = false;
        let (mut before, mut current): (Option<&str>, Option<&str>) = (None, first);
        while let Some(word) = current {
            let next = words.next();
            let before_is = |k: &str| before.is_some_and(|b| b.eq_ignore_ascii_case(k));
            let names_target = word.eq_ignore_ascii_case("INTO")
                || (word.eq_ignore_ascii_case("UPDATE") && !before_is("FOR") && !before_is("DO"))
                || (word.eq_ignore_ascii_case("FROM") && before_is("DELETE"));
            if let Some(target) = next.filter(|_| names_target) {
                named = true;
                tables.insert(Tables::named(target.trim_matches('"')));
            }
            before = Some(word);
            current = next;
        }
        if writes && !named { Tables::ALL } else { tables }
    }
}

/// The longest an entry answers, whatever the epochs say.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(1);
/// Entries per kind before a shelf is emptied.
const CAPACITY: usize = 20_000;

/// The cache of one store.
pub(crate) struct ReadCache {
    /// One per table of [`TABLES`].
    epochs: [AtomicU64; TABLES.len()],
    /// Whether this node hears every write that matters (false on PostgreSQL while not listening).
    live: AtomicBool,
    pub(crate) access: Shelf<String, AccessRecord>,
    pub(crate) app_tokens: Shelf<String, AppToken>,
    pub(crate) holders: Shelf<String, AppTokenHolder>,
    pub(crate) clients: Shelf<String, (App, Option<SecretHash>)>,
    /// The newest ID-token signing keys, by how many were asked for.
    pub(crate) signing_keys: Shelf<u32, Vec<SigningKey>>,
    /// An enterprise's policy, or that it has none (the defaults), by enterprise id.
    pub(crate) policies: Shelf<String, Option<StoredPolicy>>,
}

/// The epochs of a shelf's tables (their sum: epochs only grow) read before a database read, to
/// file what it found under.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

impl ReadCache {
    /// `live`: whether every write is heard from the start (a single node); a PostgreSQL store
    /// starts not live, until its listener is connected.
    pub(crate) fn new(live: bool) -> Self {
        ReadCache {
            epochs: Default::default(),
            live: AtomicBool::new(live),
            access: Shelf::on(&["SESSIONS", "MEMBERS", "ENTERPRISES"]),
            app_tokens: Shelf::on(&["OIDC_TOKENS", "OIDC_GRANTS", "MEMBERS", "ENTERPRISES"]),
            holders: Shelf::on(&["OIDC_TOKENS", "OIDC_GRANTS", "MEMBERS", "ENTERPRISES"]),
            clients: Shelf::on(&["APPS", "ENTERPRISES"]),
            signing_keys: Shelf::on(&["SIGNING_KEYS"]),
            policies: Shelf::on(&["POLICIES"]),
        }
    }

    /// Makes stale every entry read from `tables`: called after each write commits, before it is
    /// acknowledged, and when another node announces one.
    pub(crate) fn invalidate(&self, tables: Tables) {
        for (i, epoch) in self.epochs.iter().enumerate() {
            if tables.0 & (1 << i) != 0 {
                epoch.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Whether other nodes' writes are heard now; every change also invalidates everything.
    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
        self.invalidate(Tables::ALL);
    }

    fn epochs_of(&self, tables: Tables) -> u64 {
        let of = |(i, epoch): (usize, &AtomicU64)| (tables.0 & (1 << i) != 0).then(|| epoch.load(Ordering::SeqCst));
        self.epochs.iter().enumerate().filter_map(of).sum()
    }

    /// The ticket for a read from `tables` about to start; `None` while entries may not be kept.
    fn ticket(&self, tables: Tables) -> Option<Ticket> {
        self.live.load(Ordering::SeqCst).then(|| Ticket(self.epochs_of(tables)))
    }

    fn current(&self, tables: Tables, epochs: u64, read_at: Instant) -> bool {
        self.live.load(Ordering::SeqCst) && self.epochs_of(tables) == epochs && read_at.elapsed() < MAX_AGE
    }
}

/// The entries of one kind, read from `tables`.
pub(crate) struct Shelf<K, V> {
    tables: Tables,
    entries: Mutex<HashMap<K, (u64, Instant, V)>>,
}

impl<K: Hash + Eq, V: Clone> Shelf<K, V> {
    fn on(tables: &[&str]) -> Self {
        Shelf { tables: Tables::of(tables), entries: Mutex::new(HashMap::new()) }
    }

    /// The entry for `key`, if it is still current.
    pub(crate) fn get(&self, cache: &ReadCache, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (epochs, read_at, value) = entries.get(key)?;
        cache.current(self.tables, *epochs, *read_at).then(|| value.clone())
    }

    /// Keeps what a read under `ticket` found.
    pub(crate) fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, read_at, _)| read_at.elapsed() < MAX_AGE);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
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
    // Before the read: a write that commits from here on moves the epochs past this ticket.
    let ticket = cache.ticket(shelf.tables);
    let loaded = load.await?;
    if let (Some(ticket), Some(value)) = (ticket, &loaded) {
        shelf.put(ticket, key, value.clone());
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelf() -> Shelf<String, i32> {
        Shelf::on(&["SESSIONS", "MEMBERS"])
    }

    #[test]
    fn a_write_after_the_ticket_makes_the_entry_unused() {
        let cache = ReadCache::new(true);
        let shelf = shelf();
        let ticket = cache.ticket(shelf.tables).expect("live");
        cache.invalidate(Tables::of(&["MEMBERS"])); // a write commits while the read runs
        shelf.put(ticket, "a".into(), 1);
        assert_eq!(shelf.get(&cache, &"a".into()), None, "read before the write: never served after it");
        shelf.put(cache.ticket(shelf.tables).expect("live"), "a".into(), 2);
        assert_eq!(shelf.get(&cache, &"a".into()), Some(2));
        cache.invalidate(Tables::of(&["APPS", "OIDC_TOKENS"]));
        assert_eq!(shelf.get(&cache, &"a".into()), Some(2), "a write to other tables leaves it");
        cache.invalidate(Tables::of(&["SESSIONS"]));
        assert_eq!(shelf.get(&cache, &"a".into()), None);
    }

    #[test]
    fn a_full_shelf_drops_what_answers_nothing_any_more_first() {
        let cache = ReadCache::new(true);
        let shelf = shelf();
        let ticket = cache.ticket(shelf.tables).expect("live");
        for i in 0..CAPACITY {
            shelf.put(ticket, i.to_string(), 1);
        }
        shelf.put(ticket, "one more".into(), 2);
        assert_eq!(shelf.get(&cache, &"one more".into()), Some(2));
        assert_eq!(shelf.entries.lock().unwrap().len(), 1, "all were current: emptied, then the new one kept");
    }

    #[test]
    fn nothing_is_kept_or_served_while_not_live() {
        let cache = ReadCache::new(false);
        let shelf = shelf();
        assert!(cache.ticket(shelf.tables).is_none());
        cache.set_live(true);
        shelf.put(cache.ticket(shelf.tables).expect("live"), "a".into(), 1);
        assert_eq!(shelf.get(&cache, &"a".into()), Some(1));
        cache.set_live(false);
        assert_eq!(shelf.get(&cache, &"a".into()), None);
    }

    #[test]
    fn the_tables_a_statement_writes_are_read_from_its_text() {
        let of = Tables::of;
        assert_eq!(Tables::written_by("UPDATE sessions SET revoked_at = $1 WHERE id = $2"), of(&["SESSIONS"]));
        assert_eq!(Tables::written_by("insert into members (id) values ($1)"), of(&["MEMBERS"]));
        assert_eq!(
            Tables::written_by("INSERT OR IGNORE INTO apps(id) VALUES ($1)"),
            of(&["APPS", "OIDC_GRANTS", "OIDC_TOKENS"]),
            "with the tables its deletes cascade to"
        );
        assert_eq!(
            Tables::written_by("INSERT INTO rate_counters (k) VALUES ($1) ON CONFLICT (k) DO UPDATE SET n = n + 1"),
            Tables::NONE
        );
        assert_eq!(Tables::written_by("DELETE FROM oidc_tokens WHERE grant_id = $1"), of(&["OIDC_TOKENS"]));
        assert_eq!(
            Tables::written_by("UPDATE oidc_grants SET revoked_at = $1 WHERE member_id IN (SELECT id FROM members)"),
            of(&["OIDC_GRANTS", "OIDC_TOKENS"])
        );
        assert_eq!(Tables::written_by("SELECT id FROM sessions WHERE id = $1 FOR UPDATE"), Tables::NONE);
        assert_eq!(Tables::written_by("SELECT 1"), Tables::NONE);
        assert_eq!(
            Tables::written_by("WITH gone AS (DELETE FROM sessions WHERE x RETURNING id) SELECT count(*) FROM gone"),
            of(&["SESSIONS"])
        );
        assert_eq!(Tables::written_by("WITH x AS (SELECT 1) SELECT * FROM x"), Tables::ALL, "unreadable: all");
        assert_eq!(Tables::written_by("UPDATE\n  members\n SET name = $1"), of(&["MEMBERS"]));
        assert_eq!(
            Tables::written_by("Delete From \"Oidc_Grants\" WHERE id = $1"),
            of(&["OIDC_GRANTS", "OIDC_TOKENS"])
        );
        assert_eq!(Tables::written_by("insert into login_events (id) values ($1)"), Tables::NONE, "not a cached table");
    }
}

//! Limits: sliding-window counters (`rate_counters`) and the failure locks of numbers and networks.

use crate::SqlStore;
use crate::rows::DomainRow;
use crate::sql::{Conn, sql};
use async_trait::async_trait;
use workgate_domain::Result;
use workgate_domain::clock::Timestamp;
use workgate_domain::limits::Limit;
use workgate_domain::login::{FailureRule, Failures};
use workgate_domain::phone::PhoneNumber;
use workgate_domain::store::LimitStore;

/// Counts one hit for `bucket` unless the window is full (then: milliseconds until it has room).
async fn hit_one(c: &mut Conn<'_>, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>> {
    if let Some(lock) = c.dialect().lock_bucket {
        // The sum the upsert below checks is read before its insert: on PostgreSQL, other
        // hits on this bucket wait here until this one commits.
        c.execute(sql(lock).bind(bucket)).await?;
    }
    count_hit(c, bucket, now_ms, window_ms, max).await
}

/// [`hit_one`] once the bucket's lock is held.
async fn count_hit(c: &mut Conn<'_>, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>> {
    let hit = Hit { bucket, max, window_ms, now_ms };
    if count_hits(c, std::slice::from_ref(&hit)).await? == 1 {
        return Ok(None);
    }
    wait_for_room(c, &hit).await.map(Some)
}

/// The milliseconds until the full window of `hit`'s counter has room for it.
async fn wait_for_room(c: &mut Conn<'_>, hit: &Hit<'_>) -> Result<i64> {
    let oldest: Option<i64> = c
        .value(
            sql("SELECT MIN(window_start) FROM rate_counters WHERE bucket = $1 AND window_start > $2")
                .bind(hit.bucket)
                .bind(hit.oldest_counted()),
        )
        .await?;
    let room_at = oldest.map_or(hit.now_ms + hit.slot_ms(), |o| o + hit.window_ms + 1);
    Ok((room_at - hit.now_ms).max(1))
}

/// One hit to count against a counter. Hits are kept in twelfths of the window (slots); the
/// window is the last twelve of them.
struct Hit<'a> {
    bucket: &'a str,
    max: i64,
    window_ms: i64,
    now_ms: i64,
}

impl Hit<'_> {
    fn slot_ms(&self) -> i64 {
        (self.window_ms / 12).max(1)
    }

    /// The start of the slot `now` falls in.
    fn slot(&self) -> i64 {
        self.now_ms - self.now_ms.rem_euclid(self.slot_ms())
    }

    /// Counts after this are in the window.
    fn oldest_counted(&self) -> i64 {
        self.now_ms - self.window_ms
    }

    /// Counts up to this are reached by no window any more.
    fn stale_from(&self) -> i64 {
        self.oldest_counted() - self.slot_ms()
    }
}

/// Counts one hit against each counter in order, stopping before the first whose window is full:
/// how many were counted. Where the counters differ (a login's limits), in one statement: one
/// round trip to PostgreSQL, one statement on SQLite's writer, instead of one per counter.
async fn count_hits(c: &mut Conn<'_>, hits: &[Hit<'_>]) -> Result<usize> {
    let mut buckets: Vec<&str> = hits.iter().map(|h| h.bucket).collect();
    buckets.sort_unstable();
    buckets.dedup();
    if buckets.len() == hits.len() {
        return count_distinct_hits(c, hits).await;
    }
    // A counter named twice: each hit must see the one before it, so one statement each.
    for (i, hit) in hits.iter().enumerate() {
        if count_distinct_hits(c, std::slice::from_ref(hit)).await? == 0 {
            return Ok(i);
        }
    }
    Ok(hits.len())
}

/// [`count_hits`] of different counters, in one conditional upsert: every window's sum is read
/// before any hit is written, the hits up to the first full window are counted. It also tells,
/// for each counter, whether it holds counts that no window reaches any more; when a hit begins a
/// new slot, those are forgotten.
async fn count_distinct_hits(c: &mut Conn<'_>, hits: &[Hit<'_>]) -> Result<usize> {
    if hits.is_empty() {
        return Ok(0);
    }
    let numbered: Vec<(i64, &Hit<'_>)> = (0..).zip(hits).collect();
    let mut q = sql("WITH hits (i, bucket, slot, oldest_counted, max, stale_from) AS (");
    q.push_values(&numbered, |row, (i, h)| {
        row.bind(*i).bind(h.bucket).bind(h.slot()).bind(h.oldest_counted()).bind(h.max).bind(h.stale_from());
    });
    q.push(
        "), full_at AS (SELECT MIN(i) AS i FROM hits WHERE (SELECT COALESCE(SUM(count), 0) \
         FROM rate_counters AS r WHERE r.bucket = hits.bucket AND r.window_start > hits.oldest_counted) \
         >= hits.max) \
         INSERT INTO rate_counters (bucket, window_start, count) \
         SELECT bucket, slot, 1 FROM hits WHERE i < COALESCE((SELECT i FROM full_at), ",
    );
    q.push_bind(i64::try_from(hits.len()).unwrap_or(i64::MAX));
    q.push(
        ") ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_counters.count + 1 \
         RETURNING bucket, count, (SELECT COUNT(*) FROM (SELECT 1 FROM rate_counters AS s \
         JOIN hits AS h ON h.bucket = s.bucket WHERE s.bucket = rate_counters.bucket \
         AND s.window_start <= h.stale_from LIMIT 1) AS x) AS stale",
    );
    let rows = c.fetch_all(q).await?;
    for row in &rows {
        let (bucket, count, stale): (String, i64, i64) = (row.get("bucket")?, row.get("count")?, row.get("stale")?);
        // Not a new slot (the stale counts were forgotten when it began), or nothing to forget
        // (a counter seen for the first time, such as a number's): nothing more to do.
        if count > 1 || stale == 0 {
            continue;
        }
        if let Some(h) = hits.iter().find(|h| h.bucket == bucket) {
            c.execute(
                sql(format!(
                    "DELETE FROM rate_counters WHERE (bucket, window_start) IN (SELECT bucket, window_start \
                     FROM rate_counters WHERE bucket = $1 AND window_start <= $2 LIMIT 20{})",
                    c.dialect().skip_locked
                ))
                .bind(h.bucket)
                .bind(h.stale_from()),
            )
            .await?;
        }
    }
    Ok(rows.len())
}

/// Where a login's limits are counted: all in one transaction, or each counter in a transaction of
/// its own (PostgreSQL: so that no transaction holds one counter's lock while it waits for another's).
pub(super) enum Counting<'a, 'c> {
    Within(&'a mut Conn<'c>),
    EachAlone(&'a SqlStore),
}

/// Counts one hit against `limit` in the first of its counters with room ([`Limit::parts`]). Full
/// only when every counter is: then the milliseconds until the soonest has room.
async fn hit_in_parts(counting: &mut Counting<'_, '_>, limit: &Limit, now_ms: i64) -> Result<Option<i64>> {
    let window_ms = limit.window_secs * 1000;
    let mut soonest: Option<i64> = None;
    for (bucket, max) in limit.parts() {
        let full = match counting {
            Counting::Within(c) => hit_one(c, &bucket, now_ms, window_ms, max).await?,
            Counting::EachAlone(store) => store.hit_limit(&bucket, now_ms, window_ms, max).await?,
        };
        match full {
            None => return Ok(None),
            Some(wait_ms) => soonest = Some(soonest.map_or(wait_ms, |s| s.min(wait_ms))),
        }
    }
    // Only a sliced limit of 0 has no counter to try: it never has room.
    Ok(Some(soonest.unwrap_or(window_ms)))
}

/// Counts one hit against each limit, in order, until one is full: its index and the
/// milliseconds until it has room.
async fn hit_all(mut counting: Counting<'_, '_>, limits: &[Limit], now_ms: i64) -> Result<Option<(usize, i64)>> {
    for (i, l) in limits.iter().enumerate() {
        if let Some(wait_ms) = hit_in_parts(&mut counting, l, now_ms).await? {
            return Ok(Some((i, wait_ms)));
        }
    }
    Ok(None)
}

/// How counting the first counter of each limit in one transaction ended ([`hit_firsts`]).
pub(super) enum FirstTry {
    /// Every limit had room: one hit counted against each.
    All,
    /// This limit is full for so many more milliseconds (the hits before it stay counted).
    Full(usize, i64),
    /// The first counter of this sliced limit is full: its others are still to be tried.
    SliceFull(usize),
}

/// Counts one hit against the first counter of each limit, in order, in the caller's transaction,
/// in one statement ([`count_hits`]); on PostgreSQL with all their locks taken first, in one
/// statement and one order. Two statements and one commit for all the limits of a login.
pub(super) async fn hit_firsts(c: &mut Conn<'_>, limits: &[Limit], now_ms: i64) -> Result<FirstTry> {
    // The first counters up to the first limit that has none (a sliced limit of 0).
    let firsts: Vec<(String, i64)> = limits.iter().map_while(|l| l.parts().into_iter().next()).collect();
    if let Some(lock) = c.dialect().lock_buckets {
        let names: Vec<&str> = firsts.iter().map(|(bucket, _)| bucket.as_str()).collect();
        c.execute(sql(lock).bind(names.join("\n"))).await?;
    }
    let hits: Vec<Hit<'_>> = limits
        .iter()
        .zip(&firsts)
        .map(|(limit, (bucket, max))| Hit { bucket, max: *max, window_ms: limit.window_secs * 1000, now_ms })
        .collect();
    let counted = count_hits(c, &hits).await?;
    let Some(limit) = limits.get(counted) else { return Ok(FirstTry::All) };
    match hits.get(counted) {
        Some(full) if !limit.is_sliced() => Ok(FirstTry::Full(counted, wait_for_room(c, full).await?)),
        _ => Ok(FirstTry::SliceFull(counted)),
    }
}

/// SQLite: every limit in the caller's transaction (one write, so one commit, a wait for the disk):
/// the first counters in one statement, then a sliced limit whose first counter is full, and the
/// limits after it, one counter at a time. The index of one that is full, and the milliseconds
/// until it has room.
pub(super) async fn hit_all_within(c: &mut Conn<'_>, limits: &[Limit], now_ms: i64) -> Result<Option<(usize, i64)>> {
    Ok(match hit_firsts(c, limits, now_ms).await? {
        FirstTry::All => None,
        FirstTry::Full(i, wait_ms) => Some((i, wait_ms)),
        FirstTry::SliceFull(i) => {
            hit_all(Counting::Within(c), &limits[i..], now_ms).await?.map(|(j, wait_ms)| (i + j, wait_ms))
        }
    })
}

/// After [`FirstTry::SliceFull`] of limit `from`: that limit and those after it, each counter in a
/// transaction of its own; the index among all `limits` of one that is full.
pub(super) async fn hit_rest_alone(
    store: &SqlStore,
    limits: &[Limit],
    from: usize,
    now_ms: i64,
) -> Result<Option<(usize, i64)>> {
    let rest = hit_all(Counting::EachAlone(store), &limits[from..], now_ms).await?;
    Ok(rest.map(|(j, wait_ms)| (from + j, wait_ms)))
}

/// `locked_until` after one more failure, counted by `count` (the SQL of the new count): from
/// `$limit` failures on, `$now` + base × 2^(failures − limit), at most a day.
pub(super) fn doubling_lock(least: &str, count: &str, limit: &str, now: &str, base: &str) -> String {
    format!("{now} + {least}({base} * (1 << CAST({least}({count} - {limit}, 10) AS INTEGER)), 86400000)")
}

#[async_trait]
impl LimitStore for SqlStore {
    async fn hit_limit(&self, bucket: &str, now_ms: i64, window_ms: i64, max: i64) -> Result<Option<i64>> {
        let bucket = bucket.to_owned();
        self.write(async move |c| hit_one(c, &bucket, now_ms, window_ms, max).await).await
    }

    async fn hit_limits(&self, limits: &[Limit], now_ms: i64) -> Result<Option<(usize, i64)>> {
        match &self.db {
            crate::Db::Sqlite { .. } => {
                let limits = limits.to_vec();
                self.write(async move |c| hit_all_within(c, &limits, now_ms).await).await
            }
            // PostgreSQL: the first counter of each limit in one transaction; where a sliced
            // limit's first counter is full, its others (and the limits after it) each alone.
            crate::Db::Postgres { .. } => {
                let owned = limits.to_vec();
                match self.write(async move |c| hit_firsts(c, &owned, now_ms).await).await? {
                    FirstTry::All => Ok(None),
                    FirstTry::Full(i, wait_ms) => Ok(Some((i, wait_ms))),
                    FirstTry::SliceFull(i) => hit_rest_alone(self, limits, i, now_ms).await,
                }
            }
        }
    }

    async fn take_from_limit(&self, limit: &Limit, n: i64, now_ms: i64) -> Result<i64> {
        if n <= 0 {
            return Ok(0);
        }
        // The same counters as `hit_one`, in the same twelfths of the window.
        let limit = limit.clone();
        self.write(async move |c| {
            let hit = Hit { bucket: &limit.bucket, max: limit.max, window_ms: limit.window_secs * 1000, now_ms };
            if let Some(lock) = c.dialect().lock_bucket {
                c.execute(sql(lock).bind(hit.bucket)).await?;
            }
            let used: i64 = c
                .value(
                    sql("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM rate_counters WHERE bucket = $1 \
                         AND window_start > $2")
                    .bind(hit.bucket)
                    .bind(hit.oldest_counted()),
                )
                .await?;
            let granted = n.min(limit.max - used).max(0);
            if granted > 0 {
                c.execute(
                    sql("INSERT INTO rate_counters (bucket, window_start, count) VALUES ($1, $2, $3) \
                         ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_counters.count + $3")
                    .bind(hit.bucket)
                    .bind(hit.slot())
                    .bind(granted),
                )
                .await?;
            }
            Ok(granted)
        })
        .await
    }

    async fn record_failures(&self, phone: &PhoneNumber, rules: &[FailureRule], now: Timestamp) -> Result<()> {
        let (phone, rules) = (phone.clone(), rules.to_vec());
        self.write(async move |c| {
            let (phone, rules) = (&phone, &rules[..]);
            let lock = doubling_lock(c.dialect().least, "failure_locks.consecutive + 1", "$3", "$4", "$5");
            for rule in rules {
                c.execute(
                    sql(format!(
                        "INSERT INTO failure_locks (subject, phone, consecutive, locked_until, last_failure_at) \
                         VALUES ($1, $2, 1, 0, $4) \
                         ON CONFLICT (subject) DO UPDATE SET consecutive = failure_locks.consecutive + 1, \
                         last_failure_at = $4, \
                         locked_until = CASE WHEN failure_locks.consecutive + 1 >= $3 THEN {lock} \
                         ELSE failure_locks.locked_until END"
                    ))
                    .bind(&rule.subject)
                    .bind(phone.as_str())
                    .bind(rule.limit)
                    .bind(now.millis())
                    .bind(rule.base_lock_ms),
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    async fn failures_of(&self, subjects: &[String]) -> Result<Failures> {
        // One read at every code step: the latest lock of all the subjects at once, and whether
        // there is anything for a right code to clear.
        if subjects.is_empty() {
            return Ok(Failures { locked_until: 0, counted: false });
        }
        let placeholders: Vec<String> = (1..=subjects.len()).map(|i| format!("${i}")).collect();
        let mut query = sql(format!(
            "SELECT MAX(locked_until) AS locked_until, COUNT(*) AS counted FROM failure_locks WHERE subject IN ({})",
            placeholders.join(", ")
        ));
        for subject in subjects {
            query = query.bind(subject.as_str());
        }
        let row = self.reader().fetch_one(query).await?;
        let (until, counted): (Option<i64>, i64) = (row.get("locked_until")?, row.get("counted")?);
        Ok(Failures { locked_until: until.unwrap_or(0), counted: counted > 0 })
    }

    async fn phone_locked_until(&self, phone: &PhoneNumber) -> Result<i64> {
        let until: Option<Option<i64>> = self
            .reader()
            .optional_value(sql("SELECT MAX(locked_until) FROM failure_locks WHERE phone = $1").bind(phone.as_str()))
            .await?;
        Ok(until.flatten().unwrap_or(0))
    }

    async fn clear_failures(&self, phone: &PhoneNumber, subjects: Option<&[String]>) -> Result<()> {
        // Every successful login clears; most numbers have nothing to clear, and a read costs no
        // turn on SQLite's one writer. A failure that is not yet committed is concurrent with this
        // success, so leaving it counted is a valid order (and the stricter one).
        let recorded: Option<String> = self
            .reader()
            .optional_value(sql("SELECT subject FROM failure_locks WHERE phone = $1 LIMIT 1").bind(phone.as_str()))
            .await?;
        if recorded.is_none() {
            return Ok(());
        }
        let (phone, subjects) = (phone.clone(), subjects.map(<[String]>::to_vec));
        self.write(async move |c| {
            let (phone, subjects) = (&phone, subjects.as_deref());
            match subjects {
                None => {
                    c.execute(sql("DELETE FROM failure_locks WHERE phone = $1").bind(phone.as_str())).await?;
                }
                Some(subjects) => {
                    for subject in subjects {
                        c.execute(
                            sql("DELETE FROM failure_locks WHERE subject = $1 AND phone = $2")
                                .bind(subject.as_str())
                                .bind(phone.as_str()),
                        )
                        .await?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn reset_limits(&self, buckets: &[String]) -> Result<()> {
        let buckets = buckets.to_vec();
        self.write(async move |c| {
            let buckets = &buckets[..];
            // The buckets' locks first, in the one order `hit_firsts` takes them in: a login start
            // holding some of these counters' rows never waits for this while it waits for it.
            if let Some(lock) = c.dialect().lock_buckets {
                c.execute(sql(lock).bind(buckets.join("\n"))).await?;
            }
            for bucket in buckets {
                c.execute(sql("DELETE FROM rate_counters WHERE bucket = $1").bind(bucket.as_str())).await?;
            }
            Ok(())
        })
        .await
    }
}

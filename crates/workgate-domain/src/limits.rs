//! Rate limits, counted in the database so that they hold across processes and nodes.
//!
//! Sliding windows, counted in twelfths: a limit of N per window W allows N hits in any span of W. A library such
//! as `governor` keeps its state in one process's memory, which several nodes would each count
//! separately; hence our own counters in the shared store (one conditional upsert per hit).

use crate::Services;
use crate::error::{Error, Result};
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Limit {
    pub bucket: String,
    pub max: i64,
    pub window_secs: i64,
    /// Named in logs and login events (`per_number_hour`, …).
    pub what: &'static str,
    /// How many counters share `max` (see [`Limit::sliced`]), and the one a hit tries first.
    slices: u32,
    first_slice: u32,
}

/// The counters of a budget that every login hits (the server's and an enterprise's SMS budgets).
pub const BUDGET_SLICES: u32 = 8;

impl Limit {
    pub fn new(what: &'static str, bucket: String, max: i64, window_secs: i64) -> Self {
        Limit { bucket, max, window_secs: window_secs.max(1), what, slices: 1, first_slice: 0 }
    }

    /// Counts the limit in `n` counters (`<bucket>#0` …), each holding its share of `max`, so that
    /// concurrent hits of a busy limit do not all wait for one counter's lock (on PostgreSQL a
    /// counter is locked from its check to its commit). A hit counts in the first counter with
    /// room, from one picked at random, and is refused only when every counter is full: the limit
    /// still allows `max` hits per window, never more.
    pub fn sliced(mut self, n: u32) -> Self {
        self.slices = n.max(1);
        self.first_slice = rand::random_range(0..self.slices);
        self
    }

    /// Whether the limit is kept in several counters ([`Limit::sliced`]).
    pub fn is_sliced(&self) -> bool {
        self.slices > 1
    }

    /// The counters a hit tries, in order, each with its share of `max`: `(bucket, max)`.
    pub fn parts(&self) -> Vec<(String, i64)> {
        if !self.is_sliced() {
            return vec![(self.bucket.clone(), self.max)];
        }
        let n = i64::from(self.slices);
        (0..self.slices)
            .map(|k| (self.first_slice + k) % self.slices)
            .map(|slice| {
                let share = self.max / n + i64::from(i64::from(slice) < self.max % n);
                (format!("{}#{slice}", self.bucket), share)
            })
            .filter(|(_, share)| *share > 0)
            .collect()
    }
}

/// The /24 of an IPv4 address or the /64 of an IPv6 address, as a bucket key.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Services {
    /// Counts one hit against each limit, in order; the first limit that is full answers
    /// `rate_limited` with the seconds until it has room again. Hits already counted stay counted.
    ///
    /// Windows slide: a limit of N per hour allows N hits in any hour, not N per clock hour.
    pub async fn hit_limits(&self, limits: &[Limit]) -> Result<()> {
        let now_ms = self.clock.now().millis();
        match self.store.hit_limits(limits, now_ms).await? {
            Some(full) => Err(limit_reached(limits, full)),
            None => Ok(()),
        }
    }
}

/// The `rate_limited` answer for the `i`-th of `limits`, full for `wait_ms` more.
pub(crate) fn limit_reached(limits: &[Limit], (i, wait_ms): (usize, i64)) -> Error {
    let retry_after_secs = (wait_ms + 999) / 1000;
    let what = limits.get(i).map_or("limit", |l| l.what);
    Error::RateLimited { retry_after_secs: retry_after_secs.max(1), what }
}

impl Services {}

#[cfg(test)]
mod tests {
    #[test]
    fn networks() {
        assert_eq!(super::network_of("10.1.2.3".parse().unwrap()), "10.1.2.0/24");
        assert_eq!(super::network_of("2001:db8:1:2:3::4".parse().unwrap()), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_sliced_limit_shares_its_max_among_its_counters_and_tries_each_once() {
        let plain = super::Limit::new("x", "b".into(), 10, 60);
        assert_eq!(plain.parts(), vec![("b".to_string(), 10)]);
        for max in [0, 1, 3, 8, 10, 10_000] {
            let sliced = super::Limit::new("x", "b".into(), max, 60).sliced(8);
            let parts = sliced.parts();
            assert_eq!(parts.iter().map(|(_, m)| m).sum::<i64>(), max, "the shares add up to the limit");
            let mut names: Vec<_> = parts.iter().map(|(b, _)| b.clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), parts.len(), "no counter is tried twice");
            assert!(parts.iter().all(|(b, m)| b.starts_with("b#") && *m > 0));
            assert_eq!(parts.len(), max.min(8) as usize);
        }
    }
}

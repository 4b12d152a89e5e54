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
}

impl Limit {
    pub fn new(what: &'static str, bucket: String, max: i64, window_secs: i64) -> Self {
        Limit { bucket, max, window_secs: window_secs.max(1), what }
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
}

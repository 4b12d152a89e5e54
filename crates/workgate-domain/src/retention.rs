//! Retention: how long rows that only matter for a while are kept, and the pruning pass that
//! deletes them once they are old enough.
//!
//! The rules (what is old enough) are here; the store deletes, a few rows per statement
//! ([`RetentionStore::prune_batch`]), so that a pass never holds the database for long, and on
//! PostgreSQL only one node prunes at a time ([`RetentionStore::pruning_lock`]). The server runs a
//! pass every few minutes, off the request path. Nothing that is still in use is deleted: a
//! pending SMS, a live session or token, an unexpired challenge or code, a counter a limit still
//! counts. The audit log is kept unless the operator sets its retention.

use crate::Services;
use crate::clock::Timestamp;
use crate::error::Result;
use async_trait::async_trait;

const DAY_MS: i64 = 86_400_000;

/// Rows deleted by one statement: small enough that a pass never holds the database (SQLite's
/// one writer, PostgreSQL's row locks) for more than a moment.
pub const PRUNE_BATCH: u32 = 1000;

/// No rate limit counts hits over a longer span than this (the longest is a number's daily
/// code cap): a counter whose slot began before it no longer counts in any window.
pub const LONGEST_LIMIT_WINDOW_MS: i64 = DAY_MS;

/// How long each kind of row is kept once it is no longer of use, in days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Login challenges, counted from when they expire.
    pub login_challenges_days: i64,
    /// Login events (the support view of logins), counted from when they happened.
    pub login_events_days: i64,
    /// SMS messages sent or failed for good, counted from when they were queued. Pending ones are
    /// kept however old; a message an invitation still names goes with the invitation.
    pub sms_days: i64,
    /// Invitations, counted from when they expire (used, replaced and cancelled ones alike).
    pub invitations_days: i64,
    /// Sessions and app tokens and grants that ended (revoked, or expired), counted from then.
    pub sessions_days: i64,
    /// OpenID Connect authorization codes, counted from when they expire.
    pub oidc_codes_days: i64,
    /// The audit log: kept forever unless set.
    pub audit_days: Option<i64>,
    /// Seconds between two pruning passes of a server.
    pub interval_secs: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            login_challenges_days: 1,
            login_events_days: 90,
            sms_days: 30,
            invitations_days: 30,
            sessions_days: 30,
            oidc_codes_days: 1,
            audit_days: None,
            interval_secs: 300,
        }
    }
}

impl RetentionSettings {
    /// The settings that make no sense, by their TOML keys.
    pub fn check(&self) -> std::result::Result<(), String> {
        let days = [
            ("login_challenges_days", self.login_challenges_days),
            ("login_events_days", self.login_events_days),
            ("sms_days", self.sms_days),
            ("invitations_days", self.invitations_days),
            ("sessions_days", self.sessions_days),
            ("oidc_codes_days", self.oidc_codes_days),
        ];
        for (key, value) in days {
            if !(0..=36_500).contains(&value) {
                return Err(format!("retention.{key} must be between 0 and 36500 days"));
            }
        }
        if let Some(days) = self.audit_days
            && !(1..=36_500).contains(&days)
        {
            return Err("retention.audit_days must be between 1 and 36500 days (leave it unset to keep the log)".into());
        }
        if self.interval_secs == 0 {
            return Err("retention.interval_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// One kind of deletion and the times that decide it: rows strictly before the cut-offs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Challenges that expired before this.
    LoginChallenges { expired_before: Timestamp },
    /// Events that happened before this.
    LoginEvents { before: Timestamp },
    /// Invitations that expired before this.
    Invitations { expired_before: Timestamp },
    /// Messages `sent` or `failed` that were queued before this, and that no invitation names.
    Sms { queued_before: Timestamp },
    /// Rotated-away refresh tokens used before this (past the refresh token lifetime, a replay is
    /// refused as an unknown token anyway).
    UsedRefreshTokens { used_before: Timestamp },
    /// Sessions revoked before `ended_before`, or last refreshed before `idle_before` (so refused
    /// for idleness since `ended_before`) with their access token expired before `ended_before`.
    Sessions { ended_before: Timestamp, idle_before: Timestamp },
    /// Codes that expired before this.
    OidcCodes { expired_before: Timestamp },
    /// App tokens that expired, or were spent (rotated or revoked), before this.
    OidcTokens { ended_before: Timestamp },
    /// Grants revoked before this, or created before it with no token left; their tokens go too.
    OidcGrants { ended_before: Timestamp },
    /// `Idempotency-Key` records created before this (past their lifetime).
    IdempotencyKeys { created_before: Timestamp },
    /// Rate counters whose slot began before this (no window reaches them).
    RateCounters { slot_before: Timestamp },
    /// Counts of wrong codes whose last failure and lock both ended before this.
    FailureLocks { quiet_since: Timestamp },
    /// Audit entries written before this.
    AuditLog { before: Timestamp },
}

impl Prune {
    /// The name of what it deletes, in reports, logs and metrics.
    pub fn what(&self) -> &'static str {
        match self {
            Prune::LoginChallenges { .. } => "login_challenges",
            Prune::LoginEvents { .. } => "login_events",
            Prune::Invitations { .. } => "invitations",
            Prune::Sms { .. } => "sms_outbox",
            Prune::UsedRefreshTokens { .. } => "used_refresh_tokens",
            Prune::Sessions { .. } => "sessions",
            Prune::OidcCodes { .. } => "oidc_codes",
            Prune::OidcTokens { .. } => "oidc_tokens",
            Prune::OidcGrants { .. } => "oidc_grants",
            Prune::IdempotencyKeys { .. } => "idempotency_keys",
            Prune::RateCounters { .. } => "rate_counters",
            Prune::FailureLocks { .. } => "failure_locks",
            Prune::AuditLog { .. } => "audit_log",
        }
    }
}

/// A count of wrong codes in a row (per number and network, or per number) is forgotten after this
/// many days without a failure and without a lock holding: longer than the longest lock (a day),
/// so that waiting for the pruning never shortens a lock or resets a count an attacker is building.
pub const FAILURE_MEMORY_DAYS: i64 = 7;

/// The deletions of one pass at `now`, in order: invitations before the messages they name,
/// app tokens before the grants that may then have none left.
pub fn plan(now: Timestamp, r: &RetentionSettings, settings: &crate::settings::LoginSettings) -> Vec<Prune> {
    let ago = |ms: i64| Timestamp(now.millis().saturating_sub(ms));
    let days = |d: i64| ago(d.saturating_mul(DAY_MS));
    let ended_before = days(r.sessions_days);
    let refresh_ms = settings.refresh_token_ttl_secs.saturating_mul(1000);
    let mut plan = vec![
        Prune::LoginChallenges { expired_before: days(r.login_challenges_days) },
        Prune::LoginEvents { before: days(r.login_events_days) },
        Prune::Invitations { expired_before: days(r.invitations_days) },
        Prune::Sms { queued_before: days(r.sms_days) },
        Prune::UsedRefreshTokens { used_before: ago(refresh_ms) },
        Prune::Sessions { ended_before, idle_before: Timestamp(ended_before.millis().saturating_sub(refresh_ms)) },
        Prune::OidcCodes { expired_before: days(r.oidc_codes_days) },
        Prune::OidcTokens { ended_before },
        Prune::OidcGrants { ended_before },
        Prune::IdempotencyKeys { created_before: ago(crate::idempotency::KEY_LIFETIME_MS) },
        Prune::RateCounters { slot_before: ago(LONGEST_LIMIT_WINDOW_MS.max(settings.resend_cooldown_secs * 1000)) },
        Prune::FailureLocks { quiet_since: days(FAILURE_MEMORY_DAYS) },
    ];
    if let Some(d) = r.audit_days {
        plan.push(Prune::AuditLog { before: days(d) });
    }
    plan
}

/// What one pass deleted: rows per kind, in the order of the pass (kinds with none left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: Vec<(&'static str, u64)>,
    /// The pass stopped early (the server is shutting down); the next one goes on.
    pub interrupted: bool,
}

impl PruneReport {
    pub fn total(&self) -> u64 {
        self.deleted.iter().map(|(_, n)| n).sum()
    }

    pub fn of(&self, what: &str) -> u64 {
        self.deleted.iter().filter(|(w, _)| *w == what).map(|(_, n)| n).sum()
    }
}

/// The pruning lock of one pass, held until released (or dropped).
#[async_trait]
pub trait PruningLock: Send {
    async fn release(self: Box<Self>) -> Result<()>;
}

/// The storage side of retention.
#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Takes the lock that lets one node at a time prune, without waiting: `None` when another
    /// node holds it. It is released by [`PruningLock::release`], or when dropped.
    async fn pruning_lock(&self) -> Result<Option<Box<dyn PruningLock>>>;
    /// Deletes at most `limit` rows that `what` selects, in one transaction; answers how many.
    async fn prune_batch(&self, what: &Prune, limit: u32) -> Result<u64>;
}

impl Services {
    /// One pruning pass: every kind of row in [`plan`]'s order, [`PRUNE_BATCH`] rows per
    /// statement, until none is old enough or `stop` answers true (checked between statements).
    /// `None` when another node is pruning.
    pub async fn prune_expired(
        &self,
        retention: &RetentionSettings,
        stop: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<Option<PruneReport>> {
        let Some(lock) = self.store.pruning_lock().await? else { return Ok(None) };
        let outcome = self.prune_locked(retention, stop).await;
        let released = lock.release().await;
        let report = outcome?;
        released?;
        Ok(Some(report))
    }

    async fn prune_locked(
        &self,
        retention: &RetentionSettings,
        stop: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        for what in plan(self.clock.now(), retention, &self.settings) {
            let mut deleted = 0;
            loop {
                if stop() {
                    report.interrupted = true;
                    break;
                }
                let n = self.store.prune_batch(&what, PRUNE_BATCH).await?;
                deleted += n;
                if n < u64::from(PRUNE_BATCH) {
                    break;
                }
                // Let requests waiting for the database go first.
                tokio::task::yield_now().await;
            }
            if deleted > 0 {
                report.deleted.push((what.what(), deleted));
            }
            if report.interrupted {
                break;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::LoginSettings;

    #[test]
    fn the_plan_keeps_what_is_still_in_use() {
        let now = Timestamp(1_000 * DAY_MS);
        let settings = LoginSettings::default();
        let plan = plan(now, &RetentionSettings::default(), &settings);
        let at = |days: i64| Timestamp(now.millis() - days * DAY_MS);
        assert!(plan.contains(&Prune::LoginChallenges { expired_before: at(1) }));
        assert!(plan.contains(&Prune::LoginEvents { before: at(90) }));
        assert!(plan.contains(&Prune::Sms { queued_before: at(30) }));
        assert!(plan.contains(&Prune::UsedRefreshTokens { used_before: at(30) }), "the refresh token lifetime");
        assert!(plan.contains(&Prune::Sessions { ended_before: at(30), idle_before: at(60) }));
        assert!(plan.contains(&Prune::IdempotencyKeys { created_before: at(1) }));
        assert!(plan.contains(&Prune::RateCounters { slot_before: at(1) }));
        assert!(!plan.iter().any(|p| matches!(p, Prune::AuditLog { .. })), "the audit log is kept by default");
        let position = |what: &str| plan.iter().position(|p| p.what() == what);
        assert!(position("invitations") < position("sms_outbox"), "invitations name their messages");
        assert!(position("oidc_tokens") < position("oidc_grants"));

        let with_audit = RetentionSettings { audit_days: Some(365), ..Default::default() };
        let plan = super::plan(now, &with_audit, &settings);
        assert_eq!(plan.last(), Some(&Prune::AuditLog { before: at(365) }));
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(RetentionSettings::default().check(), Ok(()));
        assert!(RetentionSettings { audit_days: Some(0), ..Default::default() }.check().is_err());
        assert!(RetentionSettings { sms_days: -1, ..Default::default() }.check().is_err());
        assert!(RetentionSettings { interval_secs: 0, ..Default::default() }.check().is_err());
    }
}

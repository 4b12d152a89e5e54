//! The `LoginStore` half: SMS delivery, invitations, Enterprise Login, sessions and devices, for
//! both databases. Every decision is one conditional statement (`UPDATE … WHERE <still as
//! expected>`), which PostgreSQL re-checks against the newest row after waiting for a concurrent
//! writer of it, so concurrent requests cannot both pass a check that only one may pass. Where a
//! check reads one row and writes another, the row read is locked first (see `sql::Dialect`).
//!
//! Lock order, to keep PostgreSQL free of deadlocks: enterprise, member, sessions, devices (a
//! login challenge is only ever locked first, by the one request that moves it on).
//!
//! The SQL lives in one file per seam — `outbox`, `invitations`, `challenges`, `sessions` (and
//! devices), `passwords`, `limits` (rate counters and failure locks), `policy` — each written once
//! for both databases, and each implementing its own trait of the port (`ChallengeStore`,
//! `SessionStore`, …), which together make `LoginStore`.

mod challenges;
mod invitations;
mod limits;
mod outbox;
mod passwords;
mod policy;
mod sessions;

pub(crate) use invitations::insert_invitation;
pub(crate) use outbox::insert_outbox;
pub(crate) use sessions::{Revocable, revoke_member_access, revoke_one};

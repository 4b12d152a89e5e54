//! Black-box tests of the HTTP API: each test starts the real server on a random port with its own
//! fresh database, and talks to it over HTTP only (plus reading the database to check what a
//! refused request left behind). They run on SQLite here, and on PostgreSQL in
//! `tests/api_postgres.rs` when `WORKGATE_TEST_POSTGRES` names a server (see `helpers.rs`).

mod api_keys;
mod audit;
mod concurrency;
mod console;
mod departments;
pub(crate) mod helpers;
mod idempotency;
mod import;
mod login;
mod members;
mod oidc;
mod oidc_authlib;
mod oidc_basic_op;
mod oidc_clients;
mod oidc_openid_client;
pub(crate) mod paths;
#[path = "../common/postgres.rs"]
pub(crate) mod pg_schema;
mod phones;
mod policy;
mod rank;
mod requests;
mod retention;
mod roles;
mod secrets_at_rest;
mod smoke;
mod sms_gateways;
mod support;
mod tenancy;
mod trust;
mod web;

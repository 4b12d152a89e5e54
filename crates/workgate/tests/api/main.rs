//! Black-box tests of the HTTP API: each test starts the real server on a random port with its own
//! fresh database, and talks to it over HTTP only (plus reading the database to check what a
//! refused request left behind).

mod api_keys;
mod audit;
mod concurrency;
mod departments;
mod helpers;
mod idempotency;
mod import;
mod login;
mod members;
mod phones;
mod policy;
mod requests;
mod roles;
mod smoke;
mod support;
mod tenancy;
mod web;

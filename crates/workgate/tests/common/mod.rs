//! Shared by the tests that run the `workgate` binary as processes (crash.rs, multinode.rs,
//! shutdown.rs): a server process, and a PostgreSQL schema of a test's own. Each test binary uses
//! part of it.

#![allow(dead_code)]

pub mod node;
#[path = "../api/paths.rs"]
pub mod paths;
pub mod postgres;

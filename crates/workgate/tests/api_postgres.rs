//! The black-box API suite of tests/api, run on PostgreSQL: each `TestApp` creates a schema of its
//! own in the database named by `WORKGATE_TEST_POSTGRES` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) and drops it when the test ends.
//!
//! Without that variable, this binary holds a single ignored test saying so (`build.rs` turns the
//! variable into the `workgate_test_postgres` cfg, and rebuilds when it changes).

#[cfg(workgate_test_postgres)]
#[path = "api/main.rs"]
mod api;
#[cfg(workgate_test_postgres)]
use api::{helpers, paths, pg_schema};

#[cfg(not(workgate_test_postgres))]
#[test]
#[ignore = "WORKGATE_TEST_POSTGRES is not set, so the API suite ran on SQLite only; set it to \
            postgres://USER@HOST:PORT/DATABASE to run it on PostgreSQL too"]
fn api_suite_on_postgresql() {}

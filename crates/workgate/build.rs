//! Turns `WORKGATE_TEST_POSTGRES` into the `workgate_test_postgres` cfg, which includes the API
//! suite in the `api_postgres` test binary (tests/api_postgres.rs); without it, that binary
//! only reports the suite as ignored, and why. The PostgreSQL tests of tests/multinode.rs and
//! tests/crash.rs are likewise reported as ignored without it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(workgate_test_postgres)");
    println!("cargo::rerun-if-env-changed=WORKGATE_TEST_POSTGRES");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("WORKGATE_TEST_POSTGRES").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=workgate_test_postgres");
    }
}

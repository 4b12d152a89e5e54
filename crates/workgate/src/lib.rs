//! The `workgate` binary's library half: configuration, wiring and the commands, so that tests
//! start exactly the server that `workgate serve` starts.

pub mod cli;
pub mod commands;
pub mod config;
pub mod keyfile;
pub mod server;

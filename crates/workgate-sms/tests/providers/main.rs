//! The providers against local servers that check every request (signatures recomputed
//! independently), and the file provider under concurrency.

mod config;
mod file;
mod mock;
mod tencent;
mod twilio;
mod webhook;

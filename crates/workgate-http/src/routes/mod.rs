//! One module per feature, each with its handlers side by side. Handlers are thin: parse the
//! request, call a domain use case, map the result.

pub mod admin;
pub mod apps;
pub mod directory;
pub mod login;
pub mod ops;
pub mod policy;

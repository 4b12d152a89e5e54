//! One module per feature, each with its handlers side by side and its `routes()`: the router and
//! the OpenAPI document are both built from those, so a route cannot be missing from the document
//! or described without being served. Handlers are thin: parse the request, call a domain use
//! case, map the result.

pub mod access;
pub mod admin;
pub mod apps;
pub mod directory;
pub mod login;
pub mod me;
pub mod ops;
pub mod policy;

//! Workgate's domain: the vocabulary of SPEC section 1 as types that validate on construction,
//! the rules of the directory, the storage port (`store::Store`) and the use cases that combine
//! them (`directory`, `enterprises`, `api_keys`, `audit`).
//!
//! Nothing here knows about HTTP or SQL: the HTTP crate parses requests into these types and maps
//! [`Error`] to problem+json; the store crate implements [`store::Store`] over SQLite/PostgreSQL.

pub mod audit;
pub mod clock;
pub mod directory;
pub mod enterprises;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod import;
pub mod model;
pub mod phone;
pub mod secret;
pub mod sms;
pub mod store;
pub mod values;

pub use error::{Error, FieldError, Result};

use std::sync::Arc;

/// The use cases of the domain over a store and a clock. Each method takes the [`audit::Caller`]
/// it acts for and works only inside the caller's enterprise.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn store::Store>,
    pub clock: clock::SharedClock,
}

impl Services {
    pub fn new(store: Arc<dyn store::Store>, clock: clock::SharedClock) -> Self {
        Self { store, clock }
    }
}

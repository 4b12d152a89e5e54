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
pub mod invitations;
pub mod limits;
pub mod login;
pub mod model;
pub mod oidc;
pub mod outbox;
pub mod passwords;
pub mod phone;
pub mod policy;
pub mod retention;
pub mod secret;
pub mod sessions;
pub mod settings;
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
    pub settings: Arc<settings::LoginSettings>,
    /// The key of the verification codes' keyed hash, shared by every node through the store.
    code_key: Arc<[u8]>,
    /// Called after a message is written to the outbox, so this process's sender wakes at once
    /// (other nodes' messages are found by polling).
    outbox_wakeup: Arc<dyn Fn() + Send + Sync>,
    /// Parsed ID-token signing keys, by kid.
    oidc_keys: oidc::keys::KeyCache,
}

impl Services {
    /// Services with the default settings. The code key is fetched from (or first stored in) the
    /// store, so that every node hashes codes alike.
    pub async fn new(store: Arc<dyn store::Store>, clock: clock::SharedClock) -> Result<Self> {
        Self::with_settings(store, clock, settings::LoginSettings::default()).await
    }

    pub async fn with_settings(
        store: Arc<dyn store::Store>,
        clock: clock::SharedClock,
        settings: settings::LoginSettings,
    ) -> Result<Self> {
        let candidate = secret::Secret::generate("");
        let key = store.server_secret("code_hmac_key", candidate.expose(), clock.now()).await?;
        Ok(Self {
            store,
            clock,
            settings: Arc::new(settings),
            code_key: key.into_bytes().into(),
            outbox_wakeup: Arc::new(|| {}),
            oidc_keys: Default::default(),
        })
    }

    /// Sets what to call when a message has been written to the outbox.
    pub fn on_outbox_write(mut self, wakeup: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.outbox_wakeup = wakeup;
        self
    }

    pub(crate) fn outbox_written(&self) {
        (self.outbox_wakeup)();
    }
}

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
pub mod keys;
pub mod limits;
pub mod login;
pub mod model;
pub mod oidc;
pub mod outbox;
pub mod passwords;
pub mod phone;
pub mod policy;
pub mod rank;
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
    /// The keys derived from the key file (code hashes, SMS bodies, kept answers); never stored in
    /// the database.
    keys: Arc<keys::ServerKeys>,
    /// The key of the verification codes' keyed hash (a sub-key of `keys`).
    code_key: Arc<[u8]>,
    /// Called after a message is written to the outbox, so this process's sender wakes at once
    /// (other nodes' messages are found by polling).
    outbox_wakeup: Arc<dyn Fn() + Send + Sync>,
    /// Parsed ID-token signing keys, by kid.
    oidc_keys: oidc::keys::KeyCache,
    /// Writes running apart from the request that started them.
    background_writes: Arc<BackgroundWrites>,
}

/// Writes that run apart from the request that started them (an import's batches, on a blocking
/// thread): a batch that has started finishes even if its request is given up, and a shutdown
/// waits for them, so that none is left running while the runtime stops under it.
#[derive(Default)]
pub struct BackgroundWrites {
    running: std::sync::atomic::AtomicUsize,
    finished: tokio::sync::Notify,
}

/// Held while one background write runs.
pub(crate) struct BackgroundWrite(Arc<BackgroundWrites>);

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.finished.notify_waiters();
    }
}

impl BackgroundWrites {
    pub(crate) fn start(self: &Arc<Self>) -> BackgroundWrite {
        self.running.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        BackgroundWrite(self.clone())
    }

    /// Returns once no background write runs.
    pub async fn idle(&self) {
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if self.running.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            finished.await;
        }
    }
}

impl Services {
    /// Services with the default settings, using `keys` (derived from the key file, which every
    /// node of one database shares).
    pub async fn new(store: Arc<dyn store::Store>, clock: clock::SharedClock, keys: keys::ServerKeys) -> Result<Self> {
        Self::with_settings(store, clock, settings::LoginSettings::default(), keys).await
    }

    /// Services over `store` with `keys`. The database records a check value of the keys when it
    /// first meets them, and refuses other keys afterwards ([`keys::KEY_MISMATCH`]): what the old
    /// keys encrypted cannot be read with new ones.
    pub async fn with_settings(
        store: Arc<dyn store::Store>,
        clock: clock::SharedClock,
        settings: settings::LoginSettings,
        keys: keys::ServerKeys,
    ) -> Result<Self> {
        let recorded = store.server_secret(keys::KEY_CHECK_NAME, keys.check(), clock.now()).await?;
        if !secret::SecretHash::from_trusted(recorded).matches(&secret::SecretHash::from_trusted(keys.check().into())) {
            return Err(Error::Internal(keys::KEY_MISMATCH.into()));
        }
        Ok(Self {
            store,
            clock,
            settings: Arc::new(settings),
            code_key: keys.code_key().into(),
            keys: Arc::new(keys),
            outbox_wakeup: Arc::new(|| {}),
            oidc_keys: Default::default(),
            background_writes: Default::default(),
        })
    }

    /// Returns once no write that runs apart from its request (an import's batch) is running.
    pub async fn background_writes_done(&self) {
        self.background_writes.idle().await
    }

    /// The keys derived from the key file.
    pub fn keys(&self) -> &keys::ServerKeys {
        &self.keys
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

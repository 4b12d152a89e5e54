//! Starting the server: open the store, build the services and the router, start the SMS sender,
//! bind, serve.

use crate::config::ServerConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use workgate_domain::Services;
use workgate_domain::clock::{SharedClock, SystemClock};
use workgate_domain::settings::LoginSettings;
use workgate_domain::sms::SmsProvider;
use workgate_http::{AppState, HttpConfig};

/// How often the sender looks for due messages that no wake-up announced (retries, other nodes).
const SENDER_POLL: Duration = Duration::from_millis(200);
/// Messages the sender takes at a time.
const SENDER_BATCH: u32 = 50;

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub services: Services,
    stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    sender: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight, stops the sender, and returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        let result = self.http.await.unwrap_or(Ok(()));
        let _ = self.sender.await;
        result
    }

    /// Waits until the HTTP server stops by itself (it does not, unless it fails).
    pub async fn wait_ref(&mut self) -> std::io::Result<()> {
        (&mut self.http).await.unwrap_or(Ok(()))
    }
}

/// Services over the database at `database`, with default settings and no sender, using the
/// default key file of that database (see [`crate::config::default_key_file`]).
pub async fn open_services(database: &str, clock: SharedClock) -> anyhow::Result<Services> {
    open_services_keyed(database, &crate::config::default_key_file(database), clock).await
}

/// Services over the database at `database` with the keys of `key_file`, with default settings
/// and no sender (for the CLI).
pub async fn open_services_keyed(database: &str, key_file: &Path, clock: SharedClock) -> anyhow::Result<Services> {
    open_services_with(database, key_file, clock, LoginSettings::default()).await
}

async fn open_services_with(
    database: &str,
    key_file: &Path,
    clock: SharedClock,
    settings: LoginSettings,
) -> anyhow::Result<Services> {
    let keys = crate::keyfile::load_or_create(key_file)?;
    let store =
        workgate_store::open(database).await.map_err(|e| anyhow::anyhow!("opening the database failed: {e}"))?;
    match Services::with_settings(store, clock, settings, keys.keys).await {
        Ok(services) => Ok(services),
        Err(workgate_domain::Error::Internal(m)) if m == workgate_domain::keys::KEY_MISMATCH && keys.created => {
            // The new file would only stand in the way of the old one being put back.
            let _ = std::fs::remove_file(&keys.path);
            anyhow::bail!(
                "the key file {} did not exist, but this database was set up with a key file: it holds secrets that                  only that key can read. Restore the key file from your backup (or point --key-file / \
                 WORKGATE_KEY_FILE at it) and start again",
                keys.path.display()
            )
        }
        Err(workgate_domain::Error::Internal(m)) if m == workgate_domain::keys::KEY_MISMATCH => {
            anyhow::bail!("the key file {} {}", keys.path.display(), m.trim_start_matches("the key file "))
        }
        Err(e) => Err(anyhow::anyhow!("starting the services failed: {e}")),
    }
}

/// Opens the database (migrating it), starts the SMS sender, and serves on `config.listen`.
pub async fn start(config: &ServerConfig) -> anyhow::Result<RunningServer> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(config: &ServerConfig, clock: SharedClock) -> anyhow::Result<RunningServer> {
    let provider =
        workgate_sms::build(&config.sms).map_err(|e| anyhow::anyhow!("the SMS provider cannot start: {e}"))?;
    let wakeup = Arc::new(Notify::new());
    let notify = wakeup.clone();
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut settings = config.login.clone();
    if config.public_url.is_none() {
        // Links and the OpenID Connect issuer name the address actually bound (port 0 picks one).
        settings.public_url = format!("http://{addr}");
    }
    let services = open_services_with(&config.database, &config.key_file, clock, settings)
        .await?
        .on_outbox_write(Arc::new(move || notify.notify_one()));
    let http = HttpConfig {
        body_limit: config.body_limit,
        import_body_limit: config.import_body_limit,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let mut state = AppState::new(services.clone(), http);
    if let (workgate_sms::ProviderKind::File, Some(file)) = (config.sms.provider, &config.sms.file) {
        state = state.with_dev_sms(file.path.clone());
    }
    let (stop, stopped) = watch::channel(false);
    let sender = tokio::spawn(run_sender(services.clone(), provider, wakeup, stopped.clone()));
    let mut http_stopped = stopped;
    let http = tokio::spawn(workgate_http::serve(listener, state, async move {
        let _ = http_stopped.wait_for(|stop| *stop).await;
    }));
    Ok(RunningServer { addr, services, stop, http, sender })
}

/// Delivers the outbox until stopped: at once when this process wrote a message, else every
/// [`SENDER_POLL`]. Messages written just before a crash are found at the next start.
async fn run_sender(
    services: Services,
    provider: Arc<dyn SmsProvider>,
    wakeup: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(provider = provider.name(), "SMS sender started");
    loop {
        if *stop.borrow() {
            break;
        }
        match services.deliver_due_sms(provider.as_ref(), SENDER_BATCH).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "the SMS sender could not read the outbox"),
        }
        tokio::select! {
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(SENDER_POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

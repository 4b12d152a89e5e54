//! Starting the server: open the store, build the services and the router, start the SMS sender
//! and the pruner, bind, serve; and stopping it (drain, then stop the background tasks).

use crate::config::ServerConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use workgate_domain::Services;
use workgate_domain::clock::{SharedClock, SystemClock};
use workgate_domain::retention::{PruneReport, RetentionSettings};
use workgate_domain::settings::LoginSettings;
use workgate_domain::sms::SmsProvider;
use workgate_http::{AppState, HttpConfig};
use workgate_store::{Durability, OpenError};

/// How often the sender looks for due messages that no wake-up announced (retries, other nodes).
const SENDER_POLL: Duration = Duration::from_millis(200);
/// Messages the sender takes at a time.
const SENDER_BATCH: u32 = 50;

/// How long connections may take to close once the grace period is over and their requests
/// were answered `503` (a client that does not read its answer is not waited for longer).
const CUT_OFF_WAIT: Duration = Duration::from_secs(2);
/// Time the SMS sender and the pruner always get to finish their batch at shutdown, even when
/// draining requests used up the grace period.
const BACKGROUND_WAIT: Duration = Duration::from_secs(5);
/// The first pruning pass runs this long after start (or after the interval, if shorter).
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(60);

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub services: Services,
    retention: RetentionSettings,
    metrics: Arc<workgate_http::metrics::Metrics>,
    grace: Duration,
    /// Tells the HTTP server to stop accepting and finish what is in flight.
    stop_http: watch::Sender<bool>,
    /// Tells the HTTP server that the grace period is over.
    cut_off: watch::Sender<bool>,
    /// Tells the SMS sender and the pruner to stop after their current batch.
    stop_background: watch::Sender<bool>,
    /// `None` once [`RunningServer::wait_ref`] saw it end.
    http: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    sender: tokio::task::JoinHandle<()>,
    pruner: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server: stops accepting, lets the requests in flight finish within the grace
    /// period (those still running after it are answered `503 shutting_down`), then lets the SMS
    /// sender finish the batch it is delivering (queued messages stay for the next start) and the
    /// pruner its statement. Returns once every task of the server has ended, so that nothing of
    /// it still runs while the runtime shuts down.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let deadline = Instant::now() + self.grace;
        let _ = self.stop_http.send(true);
        let result = match self.http {
            None => Ok(()),
            Some(mut http) => match tokio::time::timeout_at(deadline, &mut http).await {
                Ok(joined) => joined.unwrap_or(Ok(())),
                Err(_) => {
                    tracing::warn!(
                        grace_secs = self.grace.as_secs(),
                        "requests still in flight after the grace period are cut off"
                    );
                    let _ = self.cut_off.send(true);
                    match tokio::time::timeout(CUT_OFF_WAIT, &mut http).await {
                        Ok(joined) => joined.unwrap_or(Ok(())),
                        Err(_) => {
                            // A client that does not read its answer: its connection is dropped.
                            http.abort();
                            http.await.unwrap_or(Ok(()))
                        }
                    }
                }
            },
        };
        // An import batch that its request no longer waits for (cut off) still finishes: it is
        // one atomic write, and the runtime must not stop under it.
        if tokio::time::timeout(BACKGROUND_WAIT.max(CUT_OFF_WAIT), self.services.background_writes_done())
            .await
            .is_err()
        {
            tracing::warn!("an import batch is still being written; it is left to finish or roll back");
        }
        // Messages that the last requests queued are delivered before the sender stops, if it
        // can; the others wait in the outbox for the next start (or another node).
        let _ = self.stop_background.send(true);
        let deadline = deadline.max(Instant::now() + BACKGROUND_WAIT);
        for (name, mut task) in [("SMS sender", self.sender), ("pruner", self.pruner)] {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                // An SMS being sent is sent again after its lease (a crash is no different).
                tracing::warn!(task = name, "stopped before it finished its batch");
                task.abort();
                let _ = task.await;
            }
        }
        result
    }

    /// Waits until the HTTP server stops by itself (it does not, unless it fails).
    pub async fn wait_ref(&mut self) -> std::io::Result<()> {
        let Some(http) = &mut self.http else { return std::future::pending().await };
        let result = http.await.unwrap_or(Ok(()));
        self.http = None;
        result
    }

    /// Runs one pruning pass now with the server's retention settings (the server runs one every
    /// `retention.interval_secs`); `None` when another node is pruning.
    pub async fn prune_now(&self) -> workgate_domain::Result<Option<PruneReport>> {
        let report = self.services.prune_expired(&self.retention, &|| false).await?;
        if let Some(r) = &report {
            count_pruned(&self.metrics, r);
        }
        Ok(report)
    }
}

/// Services over the database at `database`, with default settings and no sender, using the
/// default key file of that database (see [`crate::config::default_key_file`]).
pub async fn open_services(database: &str, clock: SharedClock) -> anyhow::Result<Services> {
    open_services_keyed(database, &crate::config::default_key_file(database), Durability::Required, clock).await
}

/// Services over the database at `database` with the keys of `key_file`, with default settings
/// and no sender (for the CLI).
pub async fn open_services_keyed(
    database: &str,
    key_file: &Path,
    durability: Durability,
    clock: SharedClock,
) -> anyhow::Result<Services> {
    open_services_with(database, key_file, durability, clock, LoginSettings::default()).await
}

async fn open_services_with(
    database: &str,
    key_file: &Path,
    durability: Durability,
    clock: SharedClock,
    settings: LoginSettings,
) -> anyhow::Result<Services> {
    let keys = crate::keyfile::load_or_create(key_file)?;
    let store = workgate_store::open_with(database, durability).await.map_err(|e| match e {
        OpenError::UnsafeDurability(found) => anyhow::anyhow!("{}", refusal(&found)),
        OpenError::Failed(e) => anyhow::anyhow!("opening the database failed: {e}"),
    })?;
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

/// The start-up error for database settings that could lose acknowledged writes in a crash: what
/// the store found, and how to start anyway.
fn refusal(found: &workgate_store::UnsafeDurability) -> String {
    format!(
        "refusing to start: {found}. To start anyway, accepting that a crash may lose acknowledged writes, set \
         --accept-unsafe-durability (WORKGATE_ACCEPT_UNSAFE_DURABILITY=true, or accept_unsafe_durability = true in \
         the configuration file)"
    )
}

/// Opens the database (migrating it), starts the SMS sender, and serves on `config.listen`.
pub async fn start(config: &ServerConfig) -> anyhow::Result<RunningServer> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(config: &ServerConfig, clock: SharedClock) -> anyhow::Result<RunningServer> {
    let provider = workgate_sms::build(&config.sms, config.login.code_length)
        .map_err(|e| anyhow::anyhow!("the SMS provider cannot start: {e}"))?;
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
    // The phone-number metadata loads at its first use (about half a second in a debug build):
    // load it before serving, so the first request that reads a number does not wait for it.
    let region = settings.default_region;
    let _ =
        tokio::task::spawn_blocking(move || workgate_domain::phone::PhoneNumber::parse("+8613800138000", region)).await;
    let durability = if config.accept_unsafe_durability { Durability::AcceptUnsafe } else { Durability::Required };
    let services = open_services_with(&config.database, &config.key_file, durability, clock, settings)
        .await?
        .on_outbox_write(Arc::new(move || notify.notify_one()));
    let http = HttpConfig {
        body_limit: config.body_limit,
        import_body_limit: config.import_body_limit,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let mut state = AppState::new(services.clone(), http);
    if let (workgate_sms::ProviderKind::File, Some(file)) = (config.sms.provider, &config.sms.file) {
        let path = file.path.clone();
        state = state.with_dev_sms(Arc::new(move |n| {
            let messages = workgate_sms::read_messages(&path);
            let older = messages.len().saturating_sub(n);
            let newest = messages.into_iter().skip(older);
            newest.map(|m| workgate_http::DevMessage { to: m.to, body: m.body, sent_at: m.sent_at }).collect()
        }));
    }
    let (stop_background, background_stopped) = watch::channel(false);
    let sender = tokio::spawn(run_sender(services.clone(), provider, wakeup, background_stopped.clone()));
    let metrics = state.metrics.clone();
    let pruner =
        tokio::spawn(run_pruner(services.clone(), config.retention.clone(), metrics.clone(), background_stopped));
    let (stop_http, mut http_stopped) = watch::channel(false);
    let (cut_off, cut_off_rx) = watch::channel(false);
    let http = tokio::spawn(workgate_http::serve(
        listener,
        state,
        async move {
            let _ = http_stopped.wait_for(|stop| *stop).await;
        },
        cut_off_rx,
    ));
    Ok(RunningServer {
        addr,
        services,
        retention: config.retention.clone(),
        metrics,
        grace: config.shutdown_grace,
        stop_http,
        cut_off,
        stop_background,
        http: Some(http),
        sender,
        pruner,
    })
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
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
}

/// Prunes what retention no longer keeps, every `retention.interval_secs`, until stopped. A pass
/// stops between two statements when the server stops; the next start goes on from there.
async fn run_pruner(
    services: Services,
    retention: RetentionSettings,
    metrics: Arc<workgate_http::metrics::Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_secs(retention.interval_secs);
    let mut wait = FIRST_PRUNE_AFTER.min(interval);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        wait = interval;
        let stopping = stop.clone();
        let started = Instant::now();
        match services.prune_expired(&retention, &move || *stopping.borrow()).await {
            Ok(Some(report)) if report.total() > 0 => {
                count_pruned(&metrics, &report);
                tracing::info!(
                    deleted = report.total(),
                    rows = ?report.deleted,
                    ms = started.elapsed().as_millis() as u64,
                    "pruned rows past their retention"
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("another node is pruning"),
            Err(e) => tracing::error!(error = %e, "pruning failed; the next pass tries again"),
        }
    }
}

fn count_pruned(metrics: &workgate_http::metrics::Metrics, report: &PruneReport) {
    for (table, rows) in &report.deleted {
        metrics.count_pruned(table, *rows);
    }
}

//! Starting the server: open the store, build the services and the router, bind, serve.

use crate::config::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use workgate_domain::Services;
use workgate_domain::clock::{SharedClock, SystemClock};
use workgate_http::{AppState, HttpConfig};

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub services: Services,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight, and returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap_or(Ok(()))
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait_ref(&mut self) -> std::io::Result<()> {
        (&mut self.task).await.unwrap_or(Ok(()))
    }
}

pub async fn open_services(database: &str, clock: SharedClock) -> anyhow::Result<Services> {
    let store =
        workgate_store::open(database).await.map_err(|e| anyhow::anyhow!("opening the database failed: {e}"))?;
    Ok(Services::new(store, clock))
}

/// Opens the database (migrating it) and starts serving on `config.listen`.
pub async fn start(config: &ServerConfig) -> anyhow::Result<RunningServer> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(config: &ServerConfig, clock: SharedClock) -> anyhow::Result<RunningServer> {
    let services = open_services(&config.database, clock).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let http = HttpConfig {
        body_limit: config.body_limit,
        import_body_limit: config.import_body_limit,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let state = AppState::new(services.clone(), http);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(workgate_http::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Ok(RunningServer { addr, services, stop: Some(stop), task })
}

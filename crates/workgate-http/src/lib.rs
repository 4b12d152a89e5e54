//! Workgate's HTTP front: the axum router, extractors, problem+json, metrics and the generated
//! OpenAPI document. Handlers parse, call a domain use case in `workgate_domain::Services`, and
//! map the result; they hold no business rules and no SQL.

pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod views;
pub mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use std::net::IpAddr;
use std::sync::Arc;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use workgate_domain::Services;

/// Default limit on request bodies (SPEC section 3: 1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default limit on a bulk import body.
pub const DEFAULT_IMPORT_BODY_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub body_limit: usize,
    pub import_body_limit: usize,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            import_body_limit: DEFAULT_IMPORT_BODY_LIMIT,
            trusted_proxies: vec![],
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub config: Arc<HttpConfig>,
    pub metrics: Arc<metrics::Metrics>,
    /// The OpenAPI document, rendered once.
    pub openapi: bytes::Bytes,
    /// The development SMS provider's messages, shown at `/dev/sms` (development only).
    pub dev_sms: Option<DevSmsReader>,
}

/// A message the development SMS provider delivered, as `/dev/sms` shows it.
pub struct DevMessage {
    pub to: String,
    pub body: String,
    pub sent_at: String,
}

/// Reads the newest `n` messages the development SMS provider delivered, oldest first. The server
/// gives it (it knows the provider); the HTTP layer only shows them.
pub type DevSmsReader = Arc<dyn Fn(usize) -> Vec<DevMessage> + Send + Sync>;

impl AppState {
    /// Shows the development SMS provider's messages at `/dev/sms`.
    pub fn with_dev_sms(mut self, reader: DevSmsReader) -> Self {
        self.dev_sms = Some(reader);
        self
    }

    pub fn new(services: Services, config: HttpConfig) -> Self {
        let openapi = openapi_document().to_pretty_json().unwrap_or_else(|_| "{}".into());
        AppState {
            services,
            config: Arc::new(config),
            metrics: metrics::Metrics::new(),
            openapi: bytes::Bytes::from(openapi),
            dev_sms: None,
        }
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Workgate",
    description = "Enterprise directory and login server. Errors are application/problem+json with a stable `code`."
))]
struct ApiInfo;

/// `/api/v1`. The router serves these routes and the OpenAPI document lists them (with the
/// operations endpoints), both from the handlers' own `#[utoipa::path]`.
fn api_routes(config: &HttpConfig) -> OpenApiRouter<AppState> {
    use routes::{access, admin, apps, directory, login, me, policy};
    let import = directory::import_routes().layer(DefaultBodyLimit::max(config.import_body_limit));
    OpenApiRouter::new()
        .merge(directory::routes())
        .merge(access::routes())
        .merge(admin::routes())
        .merge(apps::routes())
        .merge(policy::routes())
        .merge(login::routes())
        .merge(me::routes())
        .layer(DefaultBodyLimit::max(config.body_limit))
        .merge(import)
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let described = OpenApiRouter::with_openapi(ApiInfo::openapi())
        .merge(routes::ops::routes())
        .merge(api_routes(&HttpConfig::default()));
    let (_, mut doc) = described.split_for_parts();
    BearerAuth.modify(&mut doc);
    openapi::ErrorResponses.modify(&mut doc);
    doc
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (wgk_…) or a member's access token"))
                    .build(),
            ),
        );
    }
}

/// The whole application: `/api/v1`, the operations endpoints, and the layers around them.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes(&state.config).split_for_parts();
    let api = api.layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::layer));
    let (ops, _) = routes::ops::routes().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(ops)
        .merge(api)
        .merge(oidc::routes())
        .merge(web::routes())
        .fallback(|| async { problem::ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { problem::ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::record))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            let path = loggable_path(req.uri().path());
            tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// A request path as it may be written to the logs: the segments that carry a bearer capability
/// (a `login_id`, an invitation token) are replaced by a placeholder.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const CAPABILITY_AFTER: [&str; 3] = ["login", "invitations", "i"];
    let segments: Vec<&str> = path.split('/').collect();
    let carries = |i: usize| i > 0 && CAPABILITY_AFTER.contains(&segments[i - 1]) && segments[i] != "start";
    if !(0..segments.len()).any(|i| carries(i) && !segments[i].is_empty()) {
        return std::borrow::Cow::Borrowed(path);
    }
    let redacted: Vec<&str> =
        segments.iter().enumerate().map(|(i, s)| if carries(i) && !s.is_empty() { "…" } else { s }).collect();
    std::borrow::Cow::Owned(redacted.join("/"))
}

/// Serves the application on `listener` until `shutdown` completes; then stops accepting, lets
/// the requests in flight finish, and returns once every connection is closed. From the moment
/// `cut_off` holds `true` (the grace period is over), requests still in flight are answered
/// `503 shutting_down` at once, their handlers dropped, so that their connections close too.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    cut_off: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = router(state)
        .layer(axum::middleware::from_fn_with_state(cut_off, cut_off_layer))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Runs a request until it is done or the server's grace period is over, whichever is first.
async fn cut_off_layer(
    axum::extract::State(mut cut_off): axum::extract::State<tokio::sync::watch::Receiver<bool>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let over = async {
        // A dropped sender never cuts off.
        if cut_off.wait_for(|over| *over).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let response = tokio::select! {
        biased;
        () = over => problem::ApiError::ShuttingDown.into_response(),
        response = next.run(request) => return response,
    };
    let mut response = response;
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn capabilities_never_reach_the_logs() {
        assert_eq!(loggable_path("/api/v1/login/lgn_secret/code"), "/api/v1/login/…/code");
        assert_eq!(loggable_path("/api/v1/login/start"), "/api/v1/login/start");
        assert_eq!(loggable_path("/api/v1/invitations/wgi_secret"), "/api/v1/invitations/…");
        assert_eq!(loggable_path("/i/wgi_secret"), "/i/…");
        assert_eq!(loggable_path("/api/v1/members/mem_1"), "/api/v1/members/mem_1");
    }
}

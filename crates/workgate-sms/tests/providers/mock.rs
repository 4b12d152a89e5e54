//! A local HTTP server standing in for a gateway: it records every request, checks it with the
//! test's own function (which recomputes signatures independently of the crate), and answers as
//! the test's current scenario says.

use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

/// How the server answers the next requests.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// The gateway's success answer.
    Success,
    /// The gateway's typical 4xx answer.
    ClientError,
    /// The gateway's typical 5xx answer.
    ServerError,
    /// No answer for longer than any client timeout in these tests.
    Hang,
    /// This status and body (JSON).
    Reply(StatusCode, String),
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The decoded body when it is `application/x-www-form-urlencoded`, in order.
    pub form: Option<Vec<(String, String)>>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Result<&str, String> {
        self.headers
            .get(name)
            .ok_or_else(|| format!("header {name} is missing"))?
            .to_str()
            .map_err(|_| format!("header {name} is not visible ASCII"))
    }
}

type Check = dyn Fn(&Recorded) -> Result<(), String> + Send + Sync;
type Answer = dyn Fn(&Scenario) -> (StatusCode, String) + Send + Sync;

struct Shared {
    scenario: Mutex<Scenario>,
    requests: Mutex<Vec<Recorded>>,
    problems: Mutex<Vec<String>>,
    check: Box<Check>,
    answer: Box<Answer>,
}

pub struct MockServer {
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    shared: Arc<Shared>,
}

impl MockServer {
    /// `check` returns what is wrong with a request; `answer` gives the status and JSON body for
    /// the scenarios other than `Hang` and `Reply`.
    pub async fn start(
        check: impl Fn(&Recorded) -> Result<(), String> + Send + Sync + 'static,
        answer: impl Fn(&Scenario) -> (StatusCode, String) + Send + Sync + 'static,
    ) -> MockServer {
        let shared = Arc::new(Shared {
            scenario: Mutex::new(Scenario::Success),
            requests: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            check: Box::new(check),
            answer: Box::new(answer),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock server");
        });
        MockServer { base_url: format!("http://{address}"), shared }
    }

    pub fn set(&self, scenario: Scenario) {
        *self.shared.scenario.lock().expect("lock") = scenario;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// Everything the check found wrong so far.
    pub fn problems(&self) -> Vec<String> {
        self.shared.problems.lock().expect("lock").clone()
    }

    /// Answers `message` with each body of `cases` in turn under HTTP 200 (gateways that report
    /// business errors that way), asserting that `sms` takes it as retryable when the case says so
    /// and as permanent otherwise.
    pub async fn assert_classified_with_200(
        &self,
        sms: &dyn SmsProvider,
        (id, to): (&str, &str),
        message: &SmsMessage,
        cases: &[(String, bool)],
    ) {
        for (body, retryable) in cases {
            self.set(Scenario::Reply(StatusCode::OK, body.clone()));
            let result = sms.send(id, to, message).await;
            match (retryable, &result) {
                (true, Err(SendError::Retryable(_))) | (false, Err(SendError::Permanent(_))) => {}
                _ => panic!("{body} gave {result:?}"),
            }
        }
    }

    /// Asserts that every request so far passed the check, and that there were `count`.
    pub fn assert_checked(&self, count: usize) {
        assert_eq!(self.problems(), Vec::<String>::new(), "the server found faults in the requests");
        assert_eq!(self.requests().len(), count, "requests received");
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        // Decoded by axum's own form extractor, not by anything of the crate under test.
        // (POST: for GET, axum's form extractor reads the query string.)
        let request = Request::builder()
            .method(Method::POST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.clone()))
            .expect("request");
        Form::<Vec<(String, String)>>::from_request(request, &()).await.ok().map(|Form(pairs)| pairs)
    } else {
        None
    };
    let recorded = Recorded {
        method,
        uri: uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default(),
        headers,
        body,
        form,
    };
    let verdict = (shared.check)(&recorded);
    shared.requests.lock().expect("lock").push(recorded);
    if let Err(problem) = verdict {
        shared.problems.lock().expect("lock").push(problem.clone());
        return (StatusCode::IM_A_TEAPOT, problem).into_response();
    }
    let scenario = shared.scenario.lock().expect("lock").clone();
    let (status, body) = match &scenario {
        Scenario::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, "{}".to_owned())
        }
        Scenario::Reply(status, body) => (*status, body.clone()),
        other => (shared.answer)(other),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A port on which nothing listens (bound, then released).
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{address}")
}

/// Whether an RFC 3339 time is within `seconds` of now.
pub fn is_recent_rfc3339(text: &str, seconds: i64) -> bool {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .is_ok_and(|t| (time::OffsetDateTime::now_utc() - t).whole_seconds().abs() <= seconds)
}

/// Whether a Unix time in seconds is within `seconds` of now.
pub fn is_recent_unix(text: &str, seconds: i64) -> bool {
    text.parse::<i64>().is_ok_and(|t| (time::OffsetDateTime::now_utc().unix_timestamp() - t).abs() <= seconds)
}

/// The provider that the `[sms]` section of a TOML text configures (`what` names it if it fails).
pub fn provider(toml_text: &str, what: &str) -> std::sync::Arc<dyn SmsProvider> {
    workgate_sms::build(&sms_config(toml_text), 6).expect(what)
}

/// Parses the `[sms]` section of a TOML text the way the binary will.
pub fn sms_config(toml_text: &str) -> workgate_sms::SmsConfig {
    #[derive(serde::Deserialize)]
    struct File {
        sms: workgate_sms::SmsConfig,
    }
    toml::from_str::<File>(toml_text).expect("valid configuration").sms
}

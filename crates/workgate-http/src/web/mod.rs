//! The web pages (SPEC section 8): Enterprise Login at `/login`, the invitation landing `/i/<token>`,
//! a signed-in page at `/`, and `/dev/sms` while the `file` SMS provider is in use.
//!
//! Server-rendered forms over the same domain use cases as the JSON API, so they work without
//! JavaScript; `app.js` only runs the resend countdown. Security: the session lives in `HttpOnly`,
//! `SameSite=Lax` cookies (`Secure` when the public URL is https); every form carries a CSRF token
//! matched against a cookie in constant time; a strict Content-Security-Policy allows nothing but
//! this server's own assets; no secret travels in a URL except the invitation token, and
//! `Referrer-Policy: no-referrer` keeps that one from leaking to other sites.

pub mod admin;
mod edits;
pub mod i18n;
mod oidc;
pub mod pages;

use crate::AppState;
use crate::extract::Client;
use axum::Router;
use axum::extract::{Form, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next as MiddlewareNext;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use i18n::Lang;
use maud::Markup;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use workgate_domain::Error;
use workgate_domain::login::{ClientInfo, CodeInput, EnterpriseChoice, Next, PasswordInput, StartLoginInput};
use workgate_domain::sessions::{DeviceState, IssuedSession, MemberSession, RefreshInput};

const LANG_COOKIE: &str = "wg_lang";

/// The cookies of the web pages. Unless the public URL is plain http on a loopback address
/// (development on one's own machine), they are `Secure` and carry the `__Host-` prefix: the
/// browser then sends them only over https, only to this host, and no subdomain can set them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WebCookie {
    Access,
    Refresh,
    Device,
    Csrf,
    /// The OpenID Connect request waiting while the person signs in.
    Return,
}

impl WebCookie {
    pub(crate) fn name(self, state: &AppState) -> &'static str {
        let secure = secure(state);
        match self {
            WebCookie::Access if secure => "__Host-wg_access",
            WebCookie::Access => "wg_access",
            WebCookie::Refresh if secure => "__Host-wg_refresh",
            WebCookie::Refresh => "wg_refresh",
            WebCookie::Device if secure => "__Host-wg_device",
            WebCookie::Device => "wg_device",
            WebCookie::Csrf if secure => "__Host-wg_csrf",
            WebCookie::Csrf => "wg_csrf",
            WebCookie::Return if secure => "__Host-wg_return",
            WebCookie::Return => "wg_return",
        }
    }

    /// What removes this cookie from the browser.
    pub(crate) fn removal(self, state: &AppState) -> Cookie<'static> {
        Cookie::build(self.name(state)).path("/").secure(secure(state)).build()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/code", post(code_submit))
        .route("/login/resend", post(resend_submit))
        .route("/login/enterprise", post(enterprise_submit))
        .route("/login/password", post(password_submit))
        .route("/login/continue", post(continue_submit))
        .route("/logout", post(logout))
        .route("/i/{token}", get(invitation))
        .route("/dev/sms", get(dev_sms))
        .route("/oidc/authorize", get(oidc::authorize).post(oidc::authorize))
        .route("/oidc/logout", get(oidc::logout).post(oidc::logout))
        .route("/assets/style.css", get(|| async { asset("text/css; charset=utf-8", include_str!("style.css")) }))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("app.js")) }))
        .merge(admin::routes())
        .layer(axum::middleware::from_fn(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// Headers of every web page: a strict CSP, no framing, no sniffing, no referrer; and the language
/// switch remembered in a cookie.
async fn security_headers(req: Request, next: MiddlewareNext) -> Response {
    let chosen_lang = req
        .uri()
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "lang").map(|(_, v)| v.into_owned()));
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; \
               frame-ancestors 'none'; base-uri 'none'";
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Some(lang) = chosen_lang.filter(|l| l == "en" || l == "zh-CN")
        && let Ok(v) = HeaderValue::from_str(&format!("{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Lax"))
    {
        h.append(header::SET_COOKIE, v);
    }
    response
}

/// Whether cookies are `Secure` (and `__Host-`): always, but for plain http on a loopback address.
fn secure(state: &AppState) -> bool {
    !is_loopback_http(&state.services.settings.public_url)
}

/// `http://` to `localhost`, `127.0.0.0/8` or `[::1]`: development on one's own machine.
pub fn is_loopback_http(public_url: &str) -> bool {
    let Some(rest) = public_url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn cookie(state: &AppState, which: WebCookie, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((which.name(state), value))
        .path("/")
        .http_only(true)
        .secure(secure(state))
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age_secs))
        .build()
}

/// The CSRF token of this browser, issued on first sight.
pub(crate) fn csrf(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(existing) =
        jar.get(WebCookie::Csrf.name(state)).map(|c| c.value().to_string()).filter(|v| v.len() >= 32)
    {
        return (jar, existing);
    }
    let token = workgate_domain::secret::Secret::generate("").expose().to_string();
    (jar.add(cookie(state, WebCookie::Csrf, token.clone(), 86_400)), token)
}

pub(crate) fn csrf_ok(state: &AppState, jar: &CookieJar, presented: &str) -> bool {
    jar.get(WebCookie::Csrf.name(state))
        .is_some_and(|c| c.value().len() >= 32 && bool::from(c.value().as_bytes().ct_eq(presented.as_bytes())))
}

fn page(markup: Markup) -> Html<String> {
    Html(markup.into_string())
}

fn page_with(status: StatusCode, jar: CookieJar, markup: Markup) -> Response {
    (status, jar, page(markup)).into_response()
}

fn code_of(e: &Error) -> &'static str {
    e.code()
}

#[derive(Deserialize)]
struct LoginQuery {
    invitation: Option<String>,
    /// The number an app's `login_hint` named, pre-filled (never trusted: the code goes to it).
    login_hint: Option<String>,
    #[allow(dead_code)]
    lang: Option<String>,
}

async fn login_page(
    State(s): State<AppState>,
    lang: Lang,
    jar: CookieJar,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let (jar, token) = csrf(&s, jar);
    // The invited number is shown masked: whoever holds a forwarded link learns only its end,
    // and the code goes to the number itself.
    let hint = match q.invitation.as_deref() {
        Some(inv) => match s.services.preview_invitation(inv).await {
            Ok(p) => Some(p.phone_masked),
            Err(_) => return page_with(StatusCode::GONE, jar, pages::invitation_expired(lang)),
        },
        None => None,
    };
    let region = s.services.settings.default_region.as_str().to_string();
    let login_hint = q.login_hint.as_deref().filter(|h| h.len() <= 32 && q.invitation.is_none()).unwrap_or("");
    let form = pages::PhoneForm {
        csrf: &token,
        phone: login_hint,
        hint: hint.as_deref(),
        region: &region,
        invitation: q.invitation.as_deref(),
        error: None,
    };
    page_with(StatusCode::OK, jar, pages::phone_form(lang, &form))
}

#[derive(Deserialize)]
struct PhoneSubmit {
    csrf: String,
    region: String,
    phone: String,
    invitation: Option<String>,
}

async fn login_submit(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Form(f): Form<PhoneSubmit>,
) -> Response {
    let (jar, token) = csrf(&s, jar);
    let invitation = f.invitation.filter(|i| !i.is_empty());
    let retry = |jar: CookieJar, code: &str| {
        let form = pages::PhoneForm {
            csrf: &token,
            phone: &f.phone,
            hint: None,
            region: &f.region,
            invitation: invitation.as_deref(),
            error: Some(lang.error(code)),
        };
        page_with(StatusCode::OK, jar, pages::phone_form(lang, &form))
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return retry(jar, "csrf");
    }
    // With an invitation, an empty number means the invited one.
    let phone = match invitation.as_deref() {
        Some(inv) if f.phone.trim().is_empty() => match s.services.invitation_number(inv).await {
            Ok(phone) => phone,
            Err(e) => return retry(jar, code_of(&e)),
        },
        _ => f.phone.clone(),
    };
    let input = StartLoginInput {
        phone: phone.clone(),
        device_id: jar.get(WebCookie::Device.name(&s)).map(|c| c.value().to_string()),
        invitation: invitation.clone(),
        device_name: client.user_agent.as_deref().map(browser_name),
        region: Some(f.region.clone()),
    };
    match s.services.start_login(input, client).await {
        Ok(started) => {
            let masked = mask(&phone);
            let form = pages::CodeForm {
                csrf: &token,
                login_id: started.login_id.as_str(),
                phone_masked: &masked,
                code_length: started.code_length,
                resend_after: started.resend_after,
                error: None,
            };
            page_with(StatusCode::OK, jar, pages::code_form(lang, &form))
        }
        Err(e) => retry(jar, code_of(&e)),
    }
}

/// "Chrome on Linux" and the like, from a User-Agent, to name the device in lists.
fn browser_name(user_agent: &str) -> String {
    let browser = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")]
        .iter()
        .find(|(marker, _)| user_agent.contains(marker))
        .map_or("Browser", |(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(marker, _)| user_agent.contains(marker))
    .map_or("an unknown system", |(_, name)| name);
    format!("{browser} on {system}")
}

/// The number as typed with all but its last four digits hidden.
fn mask(typed: &str) -> String {
    let digits: Vec<char> = typed.chars().filter(char::is_ascii_digit).collect();
    let keep = digits.len().saturating_sub(4);
    digits.iter().enumerate().map(|(i, c)| if i < keep { '*' } else { *c }).collect()
}

#[derive(Clone, Deserialize)]
struct StepSubmit {
    csrf: String,
    login_id: String,
    code: Option<String>,
    enterprise_id: Option<String>,
    password: Option<String>,
}

/// Renders what comes after a step, or finishes the sign-in with cookies and a redirect home.
fn after_step(state: &AppState, lang: Lang, jar: CookieJar, token: &str, login_id: &str, next: Next) -> Response {
    match next {
        Next::Enterprise(list) => {
            let list: Vec<(String, String)> = list.iter().map(|e| (e.id.to_string(), e.name.to_string())).collect();
            page_with(StatusCode::OK, jar, pages::enterprise_form(lang, token, login_id, &list))
        }
        Next::Password => page_with(StatusCode::OK, jar, pages::password_form(lang, token, login_id, false, None)),
        Next::SetPassword => page_with(StatusCode::OK, jar, pages::password_form(lang, token, login_id, true, None)),
        Next::PendingApproval(_) => page_with(StatusCode::OK, jar, pages::pending_page(lang, token, login_id, None)),
        Next::Done(session) => signed_in(state, lang, jar, *session),
    }
}

/// Sets the session cookies and goes home, or back to the app whose sign-in request waited.
fn signed_in(state: &AppState, lang: Lang, jar: CookieJar, session: IssuedSession) -> Response {
    let jar = jar
        .add(cookie(state, WebCookie::Access, session.access_token, session.expires_in))
        .add(cookie(state, WebCookie::Refresh, session.refresh_token, state.services.settings.refresh_token_ttl_secs))
        .add(cookie(state, WebCookie::Device, session.device_id.to_string(), 5 * 365 * 86_400));
    match oidc::after_login(state, jar) {
        (jar, home) if home == "/" => (jar, Redirect::to("/")).into_response(),
        (jar, waiting) => oidc::continue_to(lang, jar, &waiting),
    }
}

/// The form a refused step shows again.
#[derive(Clone, Copy)]
enum StepPage {
    Code,
    Password,
    /// Waiting for an admin's approval of the device.
    Pending,
}

/// A login step's form as every step handler takes it: the client, the language, the cookie jar
/// with its CSRF token, the fields, and whether the form's token matched the cookie's.
struct StepPost {
    state: AppState,
    client: ClientInfo,
    lang: Lang,
    jar: CookieJar,
    token: String,
    form: StepSubmit,
    csrf_ok: bool,
}

impl axum::extract::FromRequest<AppState> for StepPost {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let Client(client) =
            Client::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let lang = Lang::of(&parts);
        let jar = CookieJar::from_headers(&parts.headers);
        let Form(form) = Form::<StepSubmit>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let (jar, token) = csrf(state, jar);
        let csrf_ok = csrf_ok(state, &jar, &form.csrf);
        Ok(StepPost { state: state.clone(), client, lang, jar, token, form, csrf_ok })
    }
}

impl StepPost {
    /// Takes the step when the form's CSRF token matched: answers with what comes next, or with
    /// `page` again and the reason the step was refused.
    async fn take<F>(
        self,
        page: StepPage,
        step: impl FnOnce(workgate_domain::Services, ClientInfo, StepSubmit) -> F,
    ) -> Response
    where
        F: std::future::Future<Output = Result<Next, Error>>,
    {
        let StepPost { state, client, lang, jar, token, form, csrf_ok } = self;
        if !csrf_ok {
            return step_error(&state, lang, jar, &token, &form, &Error::field("csrf", "expired"), page);
        }
        match step(state.services.clone(), client, form.clone()).await {
            Ok(next) => after_step(&state, lang, jar, &token, &form.login_id, next),
            Err(e) => step_error(&state, lang, jar, &token, &form, &e, page),
        }
    }
}

/// A step refused: the same form again with the reason, or the start when the login is over.
fn step_error(
    state: &AppState,
    lang: Lang,
    jar: CookieJar,
    token: &str,
    f: &StepSubmit,
    e: &Error,
    page: StepPage,
) -> Response {
    let message = lang.error(code_of(e));
    let over = matches!(e, Error::CodeExpired | Error::TooManyAttempts | Error::InvitationExpired);
    if over {
        let region = state.services.settings.default_region.as_str();
        let phone_form =
            pages::PhoneForm { csrf: token, phone: "", hint: None, region, invitation: None, error: Some(message) };
        return page_with(StatusCode::OK, jar, pages::phone_form(lang, &phone_form));
    }
    let markup = match page {
        StepPage::Password => {
            pages::password_form(lang, token, &f.login_id, matches!(e, Error::PasswordTooWeak { .. }), Some(message))
        }
        StepPage::Pending => pages::pending_page(lang, token, &f.login_id, Some(message)),
        StepPage::Code => {
            let code_form = pages::CodeForm {
                csrf: token,
                login_id: &f.login_id,
                phone_masked: "",
                code_length: 6,
                resend_after: 0,
                error: Some(message),
            };
            pages::code_form(lang, &code_form)
        }
    };
    page_with(StatusCode::OK, jar, markup)
}

async fn code_submit(post: StepPost) -> Response {
    post.take(StepPage::Code, |services, client, f| async move {
        let input = CodeInput { code: f.code.unwrap_or_default() };
        services.submit_code(&f.login_id, input, client).await
    })
    .await
}

async fn resend_submit(post: StepPost) -> Response {
    let StepPost { state: s, client, lang, jar, token, form: f, csrf_ok } = post;
    if !csrf_ok {
        return step_error(&s, lang, jar, &token, &f, &Error::field("csrf", "expired"), StepPage::Code);
    }
    match s.services.resend_code(&f.login_id, client).await {
        Ok(resend_after) => {
            let form = pages::CodeForm {
                csrf: &token,
                login_id: &f.login_id,
                phone_masked: "",
                code_length: s.services.settings.code_length,
                resend_after,
                error: None,
            };
            page_with(StatusCode::OK, jar, pages::code_form(lang, &form))
        }
        Err(e) => step_error(&s, lang, jar, &token, &f, &e, StepPage::Code),
    }
}

async fn enterprise_submit(post: StepPost) -> Response {
    post.take(StepPage::Code, |services, client, f| async move {
        let input = EnterpriseChoice { enterprise_id: f.enterprise_id.unwrap_or_default() };
        services.choose_enterprise(&f.login_id, input, client).await
    })
    .await
}

async fn password_submit(post: StepPost) -> Response {
    post.take(StepPage::Password, |services, client, f| async move {
        let input = PasswordInput { password: f.password.unwrap_or_default() };
        services.submit_password(&f.login_id, input, client).await
    })
    .await
}

async fn continue_submit(post: StepPost) -> Response {
    post.take(
        StepPage::Pending,
        |services, client, f| async move { services.continue_login(&f.login_id, client).await },
    )
    .await
}

/// The browser's member session: the access cookie, or a refresh with the refresh cookie.
pub(crate) async fn browser_session(
    s: &AppState,
    jar: CookieJar,
    client: ClientInfo,
) -> (CookieJar, Option<MemberSession>) {
    if let Some(access) = jar.get(WebCookie::Access.name(s))
        && let Ok(session) = s.services.authenticate_access(access.value()).await
    {
        return (jar, Some(session));
    }
    let Some(refresh) = jar.get(WebCookie::Refresh.name(s)).map(|c| c.value().to_string()) else { return (jar, None) };
    match s.services.refresh(RefreshInput { refresh_token: refresh, app_version: None }, client).await {
        Ok(issued) => {
            let session = s.services.authenticate_access(&issued.access_token).await.ok();
            let jar = jar.add(cookie(s, WebCookie::Access, issued.access_token, issued.expires_in)).add(cookie(
                s,
                WebCookie::Refresh,
                issued.refresh_token,
                s.services.settings.refresh_token_ttl_secs,
            ));
            (jar, session)
        }
        // A failure of the database is not a reason to sign the person out: the cookies stay
        // for the next request.
        Err(Error::Internal(cause)) => {
            tracing::error!(%cause, "refreshing a browser session failed");
            (jar, None)
        }
        Err(_) => (jar.remove(WebCookie::Access.removal(s)).remove(WebCookie::Refresh.removal(s)), None),
    }
}

async fn home(State(s): State<AppState>, Client(client): Client, lang: Lang, jar: CookieJar) -> Response {
    let (jar, session) = browser_session(&s, jar, client).await;
    let Some(session) = session else { return (jar, Redirect::to("/login")).into_response() };
    let (jar, token) = csrf(&s, jar);
    let Ok((member, enterprise)) = s.services.me(&session).await else {
        return (jar, Redirect::to("/login")).into_response();
    };
    let devices = s.services.my_devices(&session).await.unwrap_or_default();
    let home = pages::Home {
        csrf: &token,
        name: member.name.as_str(),
        phone: member.phone.as_str(),
        enterprise: enterprise.name.as_str(),
        devices: devices
            .into_iter()
            .filter(|d| d.state != DeviceState::Revoked)
            .map(|d| {
                let label = d.name.or(d.platform).unwrap_or_else(|| d.id.to_string());
                (label, d.last_seen_at.to_rfc3339(), d.id == session.device_id)
            })
            .collect(),
    };
    page_with(StatusCode::OK, jar, pages::home(lang, &home))
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, Redirect::to("/")).into_response();
    }
    let (jar, session) = browser_session(&s, jar, client).await;
    if let Some(session) = session
        && let Err(e) = s.services.logout(&session).await
    {
        tracing::warn!(error = %e, "web logout failed");
    }
    let jar = jar.remove(WebCookie::Access.removal(&s)).remove(WebCookie::Refresh.removal(&s));
    (jar, Redirect::to("/login")).into_response()
}

async fn invitation(State(s): State<AppState>, lang: Lang, Path(token): Path<String>) -> Response {
    match s.services.preview_invitation(&token).await {
        Ok(p) => page(pages::invitation(lang, &p.enterprise_name, &p.phone_masked, &token)).into_response(),
        Err(_) => (StatusCode::GONE, page(pages::invitation_expired(lang))).into_response(),
    }
}

/// The `file` provider's latest messages: login codes, so only for this machine's own browser.
async fn dev_sms(State(s): State<AppState>, Client(client): Client, lang: Lang) -> Response {
    let Some(read_newest) = s.dev_sms.as_deref() else {
        return (StatusCode::NOT_FOUND, "Not found: /dev/sms exists only with the file SMS provider.").into_response();
    };
    if !client.ip.is_some_and(|ip| ip.is_loopback()) {
        return (StatusCode::FORBIDDEN, "/dev/sms answers only on this machine (loopback).").into_response();
    }
    page(pages::dev_sms(lang, &read_newest(50))).into_response()
}

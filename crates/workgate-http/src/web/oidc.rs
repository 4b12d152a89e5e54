//! The browser side of OpenID Connect: the authorization endpoint, which signs the person in
//! through the Enterprise Login pages when the browser has no session, and RP-initiated logout.
//!
//! Coming back after the login: the authorization request's own URL waits in an `HttpOnly`
//! cookie (`wg_return`, ten minutes) and the login's last step redirects there. It only ever
//! holds a path of this server under `/oidc/authorize`, so it cannot send anyone elsewhere.

use super::i18n::{Key, Lang};
use super::{WebCookie, browser_session, cookie, csrf, csrf_ok, page_with, pages};
use crate::AppState;
use crate::extract::Client;
use crate::oidc::unique_params;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use maud::html;
use std::collections::HashMap;
use workgate_domain::ids::AppId;
use workgate_domain::oidc::OAuthError;
use workgate_domain::oidc::flow::{AuthorizeError, AuthorizeRequest, Refusal, redirect_with};

const AUTHORIZE_PATH: &str = "/oidc/authorize";

/// Where the login's last step goes: back to a waiting authorization request, else home.
pub(super) fn after_login(s: &AppState, jar: CookieJar) -> (CookieJar, String) {
    match jar.get(WebCookie::Return.name(s)).map(|c| c.value().to_string()) {
        Some(path) if path.starts_with(&format!("{AUTHORIZE_PATH}?")) => {
            (jar.remove(WebCookie::Return.removal(s)), path)
        }
        _ => (jar, "/".to_string()),
    }
}

fn refusal_text(lang: Lang, refusal: &Refusal) -> String {
    let zh = lang == Lang::Zh;
    match refusal {
        Refusal::UnknownApp => if zh {
            "该应用未在 Workgate 注册（client_id 无效）。请联系应用的管理员。"
        } else {
            "This app is not registered with Workgate (unknown client_id). Tell the app's administrator."
        }
        .into(),
        Refusal::UnregisteredRedirectUri => if zh {
            "该应用的回调地址未登记（redirect_uri 必须完全一致）。请联系应用的管理员。"
        } else {
            "The app asked to return to an address it did not register (redirect_uri must match exactly). \
                 Tell the app's administrator."
        }
        .into(),
        Refusal::RepeatedParameter => if zh {
            "登录请求无效：有参数重复。"
        } else {
            "The sign-in request is invalid: a parameter is repeated."
        }
        .into(),
        Refusal::OtherEnterprise { app } => {
            if zh {
                format!("「{app}」不属于您当前登录的企业。请退出后以该应用所属企业的身份登录，或联系应用的管理员。")
            } else {
                format!(
                    "{app} is not an app of the organisation you are signed in to. Sign out and sign in with your \
                     membership of the app's organisation, or ask the app's administrator."
                )
            }
        }
        Refusal::NotActive => if zh {
            "您的账号当前不可登录，请联系管理员。"
        } else {
            "Your account cannot sign in now. Ask your administrator."
        }
        .into(),
        Refusal::Unavailable => if zh {
            "服务暂时不可用，请稍后再试。"
        } else {
            "The service is unavailable. Please try again shortly."
        }
        .into(),
    }
}

fn error_page(lang: Lang, jar: CookieJar, status: StatusCode, refusal: &Refusal, offer_login: bool) -> Response {
    let title = if lang == Lang::Zh { "无法登录该应用" } else { "Cannot sign in to this app" };
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (refusal_text(lang, refusal)) }
        @if offer_login { p { a.button href="/login" { (lang.t(Key::SignIn)) } } }
    };
    page_with(status, jar, pages::layout(lang, title, body))
}

/// The authorization request's URL with `prompt`, `max_age` and `id_token_hint` removed: after
/// the login they asked for, the fresh session satisfies them (and the person chose who they are).
fn return_path(params: &HashMap<String, String>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut names: Vec<&String> =
        params.keys().filter(|k| !matches!(k.as_str(), "prompt" | "max_age" | "id_token_hint")).collect();
    names.sort();
    for name in names {
        query.append_pair(name, &params[name]);
    }
    format!("{AUTHORIZE_PATH}?{}", query.finish())
}

/// The login page for an authorization request: in the language of `ui_locales` when it names one
/// the pages speak, with the number of `login_hint` filled in.
fn login_path(req: &AuthorizeRequest) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(lang) = req.ui_locales.iter().find_map(|l| Lang::parse(l)) {
        query.append_pair("lang", lang.code());
    }
    if let Some(hint) = req.login_hint.as_deref() {
        query.append_pair("login_hint", hint.strip_prefix("tel:").unwrap_or(hint));
    }
    let query = query.finish();
    if query.is_empty() { "/login".to_string() } else { format!("/login?{query}") }
}

/// `GET|POST /oidc/authorize` (OpenID Connect Core 3.1.2.1 asks for both; a POST carries the
/// parameters as a form).
pub(super) async fn authorize(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    method: Method,
    RawQuery(query): RawQuery,
    body: bytes::Bytes,
) -> Response {
    let encoded = if method == Method::POST { body.to_vec() } else { query.unwrap_or_default().into_bytes() };
    let params = match unique_params(&encoded) {
        Ok(p) => p,
        Err(_) => return error_page(lang, jar, StatusCode::BAD_REQUEST, &Refusal::RepeatedParameter, false),
    };
    let req = match s.services.check_authorize(&params).await {
        Ok(req) => req,
        Err(e) => return refused(&s, lang, jar, e, false),
    };
    let to_app = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: req.redirect_uri.clone(),
        error: OAuthError::new(error, description),
        state: req.state.clone(),
    };
    // The member an `id_token_hint` names: only their session may answer.
    let hinted = match req.id_token_hint.as_deref() {
        None => None,
        Some(token) => match s.services.logout_hint(token).await {
            Ok(Some(hint)) => Some(hint.member_id),
            Ok(None) => {
                let e = to_app("invalid_request", "id_token_hint is not an ID token of this server");
                return refused(&s, lang, jar, e, false);
            }
            Err(e) => {
                tracing::error!(error = %e, "checking an id_token_hint failed");
                return refused(&s, lang, jar, AuthorizeError::Page(Refusal::Unavailable), false);
            }
        },
    };
    let (jar, session) = browser_session(&s, jar, client).await;
    let now = s.services.clock.now();
    let too_old = |authenticated: i64| req.max_age.is_some_and(|max| now.millis() - authenticated > max * 1000);
    let session = session.filter(|s| {
        !req.prompt_login
            && !too_old(s.authenticated_at.millis())
            && hinted.as_ref().is_none_or(|member| *member == s.member_id)
    });
    let Some(session) = session else {
        if req.prompt_none {
            return refused(&s, lang, jar, to_app("login_required", "the person is not signed in"), false);
        }
        let jar = jar.add(cookie(&s, WebCookie::Return, return_path(&params), 600));
        return (jar, Redirect::to(&login_path(&req))).into_response();
    };
    match s.services.authorize(&req, &session).await {
        Ok(location) => (jar, Redirect::to(&location)).into_response(),
        // prompt=none never shows a page: whatever stops the sign-in goes back to the app.
        Err(AuthorizeError::Page(Refusal::Unavailable)) if req.prompt_none => {
            let e = to_app("temporarily_unavailable", "the service is unavailable; try again shortly");
            refused(&s, lang, jar, e, false)
        }
        Err(AuthorizeError::Page(_)) if req.prompt_none => {
            let e = to_app("login_required", "the person must sign in as a member of this app's organisation");
            refused(&s, lang, jar, e, false)
        }
        Err(e @ AuthorizeError::Page(Refusal::OtherEnterprise { .. })) => {
            // Signing in again (choosing the app's enterprise) comes back here.
            let jar = jar.add(cookie(&s, WebCookie::Return, return_path(&params), 600));
            refused(&s, lang, jar, e, true)
        }
        Err(e) => refused(&s, lang, jar, e, false),
    }
}

/// A page that moves the browser on to `url` by itself. Used after a form's POST instead of a
/// redirect: the CSP's `form-action 'self'` would stop a form's redirect to an app's address.
pub(super) fn continue_to(lang: Lang, jar: CookieJar, url: &str) -> Response {
    let title = if lang == Lang::Zh { "正在继续…" } else { "Continuing…" };
    let markup = html! {
        (maud::DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={ "0;url=" (url) };
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/style.css";
            }
            body { main { p { a href=(url) { (title) } } } }
        }
    };
    page_with(StatusCode::OK, jar, markup)
}

fn refused(s: &AppState, lang: Lang, jar: CookieJar, e: AuthorizeError, offer_login: bool) -> Response {
    match e {
        AuthorizeError::Page(refusal) => {
            let status = match refusal {
                Refusal::OtherEnterprise { .. } | Refusal::NotActive => StatusCode::FORBIDDEN,
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            error_page(lang, jar, status, &refusal, offer_login)
        }
        AuthorizeError::Redirect { redirect_uri, error, state } => {
            (jar, Redirect::to(&s.services.error_redirect(&redirect_uri, &error, state.as_deref()))).into_response()
        }
    }
}

/// `GET|POST /oidc/logout` (OpenID Connect RP-Initiated Logout 1.0). With a valid
/// `id_token_hint` for the signed-in member, the session ends at once; otherwise the person
/// confirms first (a bare GET must not sign anyone out: any site could embed it).
pub(super) async fn logout(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    method: axum::http::Method,
    RawQuery(query): RawQuery,
    body: bytes::Bytes,
) -> Response {
    let encoded =
        if method == axum::http::Method::POST { body.to_vec() } else { query.unwrap_or_default().into_bytes() };
    let Ok(params) = unique_params(&encoded) else {
        return error_page(lang, jar, StatusCode::BAD_REQUEST, &Refusal::RepeatedParameter, false);
    };
    let hint = match params.get("id_token_hint") {
        Some(token) => match s.services.logout_hint(token).await {
            Ok(Some(hint)) => Some(hint),
            _ => return error_page(lang, jar, StatusCode::BAD_REQUEST, &Refusal::UnknownApp, false),
        },
        None => None,
    };
    let app = match (hint.as_ref().map(|h| h.app_id.clone()), params.get("client_id")) {
        (Some(from_hint), Some(given)) if from_hint.as_str() != given => {
            return error_page(lang, jar, StatusCode::BAD_REQUEST, &Refusal::UnknownApp, false);
        }
        (Some(from_hint), _) => Some(from_hint),
        (None, Some(given)) => AppId::parse(given),
        (None, None) => None,
    };
    let back = match (params.get("post_logout_redirect_uri"), &app) {
        (None, _) => None,
        (Some(uri), Some(app)) if s.services.logout_redirect(app, uri).await.unwrap_or(false) => Some(uri.clone()),
        (Some(_), _) => {
            return error_page(lang, jar, StatusCode::BAD_REQUEST, &Refusal::UnregisteredRedirectUri, false);
        }
    };
    let (jar, session) = browser_session(&s, jar, client).await;
    let hinted_same_member = hint.as_ref().zip(session.as_ref()).is_some_and(|(h, s)| h.member_id == s.member_id);
    let confirmed = method == axum::http::Method::POST && params.get("csrf").is_some_and(|t| csrf_ok(&s, &jar, t));
    if session.is_some() && !hinted_same_member && !confirmed {
        let (jar, token) = csrf(&s, jar);
        let title = if lang == Lang::Zh { "退出 Workgate？" } else { "Sign out of Workgate?" };
        let body = html! {
            h1 { (title) }
            form method="post" action="/oidc/logout" {
                input type="hidden" name="csrf" value=(token);
                @for (name, value) in &params {
                    @if name != "csrf" { input type="hidden" name=(name) value=(value); }
                }
                button type="submit" { (lang.t(Key::SignOut)) }
            }
        };
        return page_with(StatusCode::OK, jar, pages::layout(lang, title, body));
    }
    if let Some(session) = session
        && let Err(e) = s.services.logout(&session).await
    {
        tracing::warn!(error = %e, "logout at the app's request failed");
    }
    let jar = jar.remove(WebCookie::Access.removal(&s)).remove(WebCookie::Refresh.removal(&s));
    match back {
        Some(uri) => {
            let state: Vec<(&str, &str)> =
                params.get("state").map(|st| vec![("state", st.as_str())]).unwrap_or_default();
            let url = redirect_with(&uri, &state);
            if method == axum::http::Method::POST {
                continue_to(lang, jar, &url)
            } else {
                (jar, Redirect::to(&url)).into_response()
            }
        }
        None => (jar, Redirect::to("/login")).into_response(),
    }
}

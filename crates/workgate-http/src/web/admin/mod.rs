//! The admin console (`/admin`): the directory, a member's invitations, devices and sessions, bulk
//! import, the policy, the audit log, API keys and apps, for owners and admins (and department
//! admins within their subtrees — the domain decides what each may see and do).
//!
//! One module per page, each owning its routes, handlers first and markup after. Pages are
//! server-rendered; every change is a POST with the CSRF token, answered with a redirect (so a
//! reload never repeats it) carrying a short notice. The [`Console`] extractor carries the
//! signed-in admin, the page's language and the CSRF token; [`ConsoleForm`] and [`ConsoleEdit`]
//! also read the posted form and refuse it without the token, so no handler repeats that preamble.

mod apps;
mod audit;
mod departments;
mod import;
mod keys;
mod members;
mod policy;

use super::edits::{self, Edit};
use super::i18n::Lang;
use super::pages::layout;
use super::{browser_session, csrf, csrf_ok};
use crate::AppState;
use crate::extract::Client;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use workgate_domain::Error;
use workgate_domain::audit::Caller;
use workgate_domain::model::Department;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/members") }))
        .merge(members::routes())
        .merge(departments::routes())
        .merge(import::routes())
        .merge(policy::routes())
        .merge(audit::routes())
        .merge(keys::routes())
        .merge(apps::routes())
}

/// The signed-in admin of a console page: who they are to the domain, the page's language, the
/// CSRF token its forms carry, and the cookies to answer with. Without a session the browser is
/// sent to sign in; a member who is not an admin gets a 403 page.
pub(super) struct Console {
    pub jar: CookieJar,
    pub caller: Caller,
    pub token: String,
    pub lang: Lang,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let Client(client) = Client::from_request_parts(parts, s).await.map_err(IntoResponse::into_response)?;
        let lang = Lang::of(parts);
        let jar = CookieJar::from_headers(&parts.headers);
        let (jar, session) = browser_session(s, jar, client.clone()).await;
        let Some(session) = session else { return Err((jar, Redirect::to("/login")).into_response()) };
        let ip = client.ip.map(|ip| ip.to_string());
        match s.services.admin_caller(&session, ip).await {
            Ok(caller) => {
                let (jar, token) = csrf(s, jar);
                Ok(Console { jar, caller, token, lang })
            }
            // Only a refusal says the page is not for this person; a failure says so too.
            Err(Error::Internal(cause)) => {
                tracing::error!(%cause, "reading the console's admin failed");
                let text =
                    lang.pick("The service is unavailable. Please try again shortly.", "服务暂时不可用，请稍后再试。");
                Err((StatusCode::SERVICE_UNAVAILABLE, jar, Html(text.to_string())).into_response())
            }
            Err(_) => Err((
                StatusCode::FORBIDDEN,
                jar,
                Html(lang.pick("This page is for administrators.", "此页面仅供管理员使用。").to_string()),
            )
                .into_response()),
        }
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// The console and a posted form whose CSRF token matched. A form without it, or one that cannot
/// be read, goes back to its page with a notice and changes nothing.
pub(super) struct ConsoleForm<T>(pub Console, pub T);

/// The console and a posted edit form: the values it showed and the values sent back (see
/// [`edits`]).
pub(super) struct ConsoleEdit<T>(pub Console, pub Edit<T>);

/// Reads the console and a form body, checks its CSRF token and parses it with `parse`.
async fn posted<T>(
    req: Request,
    s: &AppState,
    parse: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> Result<(Console, T), Response> {
    let (mut parts, body) = req.into_parts();
    let console = Console::from_request_parts(&mut parts, s).await?;
    let page = page_of(parts.uri.path());
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => bytes,
        Err(_) => return Err(console.back(&page, console.lang.error("validation_failed"))),
    };
    let presented = edits::form::<CsrfField>(&bytes).map(|f| f.csrf).unwrap_or_default();
    if !csrf_ok(s, &console.jar, &presented) {
        let notice = console.lang.error("csrf");
        return Err(console.back(&page, notice));
    }
    match parse(&bytes) {
        Ok(form) => Ok((console, form)),
        Err(e) => {
            let notice = failure(console.lang, &e);
            Err(console.back(&page, &notice))
        }
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (console, form) = posted(req, s, edits::form::<T>).await?;
        Ok(ConsoleForm(console, form))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleEdit<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (console, edit) = posted(req, s, Edit::<T>::parse).await?;
        Ok(ConsoleEdit(console, edit))
    }
}

/// The page a console form was posted from, where its answer goes back to: the action paths
/// (`…/status`, `…/delete`, `…/secret`, …) belong to the page of their record.
fn page_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["admin", "departments"] => "/admin/members".to_string(),
        ["admin", "keys", ..] => "/admin/keys".to_string(),
        ["admin", section @ ("members" | "departments" | "apps"), id, _, ..] => format!("/admin/{section}/{id}"),
        _ => path.to_string(),
    }
}

/// A console handler's answer; `Err` is a redirect saying why the page could not be shown, so that
/// `?` ends a handler whose read failed.
type Answer = Result<Response, Response>;

impl Console {
    /// The value read, or a redirect to `to` saying why it could not be read.
    // A `Response` is the answer a handler returns anyway, once per request: its size costs nothing.
    #[allow(clippy::result_large_err)]
    fn read<T>(&self, to: &str, read: Result<T, Error>) -> Result<T, Response> {
        read.map_err(|e| self.refused(to, &e))
    }

    /// A page of the console.
    fn page(self, title: &str, notice: Option<&str>, body: Markup) -> Response {
        (self.jar, Html(shell(self.lang, title, notice, body).into_string())).into_response()
    }

    /// A redirect to `to` with a notice.
    fn back(&self, to: &str, notice: &str) -> Response {
        (self.jar.clone(), back(to, notice)).into_response()
    }

    /// A redirect to `to` saying why something was refused.
    fn refused(&self, to: &str, e: &Error) -> Response {
        self.back(to, &failure(self.lang, e))
    }

    /// The outcome of a change: `done` as the notice when it worked, the reason when it did not.
    fn answer<T>(&self, to: &str, result: Result<T, Error>, done: &str) -> Response {
        match result {
            Ok(_) => self.back(to, done),
            Err(e) => self.refused(to, &e),
        }
    }
}

/// What a page read: the value, or the default with the reason kept for the page to show.
/// Nothing read is silently turned into an empty list.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn keep<T: Default>(&mut self, lang: Lang, read: Result<T, Error>) -> T {
        read.unwrap_or_else(|e| {
            self.0.push(failure(lang, &e));
            T::default()
        })
    }

    fn markup(&self) -> Markup {
        html! { @for p in &self.0 { p.error role="alert" { (p) } } }
    }
}

fn shell(lang: Lang, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    layout(
        lang,
        title,
        html! {
            nav.admin aria-label="Admin" {
                a href="/admin/members" { (lang.pick("Members", "成员")) }
                a href="/admin/import" { (lang.pick("Import", "批量导入")) }
                a href="/admin/policy" { (lang.pick("Policy", "安全策略")) }
                a href="/admin/audit" { (lang.pick("Audit log", "操作日志")) }
                a href="/admin/keys" { (lang.pick("API keys", "API 密钥")) }
                a href="/admin/apps" { (lang.pick("Apps", "应用")) }
                a href="/" { (lang.pick("My account", "我的账号")) }
            }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            (body)
        },
    )
}

fn failure(lang: Lang, e: &Error) -> String {
    let base = lang.error(e.code());
    match e {
        Error::Validation(fields) => {
            let detail: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            format!("{base} ({})", detail.join("; "))
        }
        Error::Conflict(d) | Error::Forbidden(d) => format!("{base} {d}"),
        Error::ChangedMeanwhile(_) => format!("{base} {e}"),
        Error::InvalidPhone { detail } => detail.clone(),
        _ => base.to_string(),
    }
}

fn back(to: &str, notice: &str) -> Response {
    let encoded: String = form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{to}{}notice={encoded}", if to.contains('?') { '&' } else { '?' })).into_response()
}

/// The notice a redirect carries to the page it lands on.
#[derive(Deserialize, Default)]
struct Notice {
    notice: Option<String>,
}

/// A form whose only field is its CSRF token: a button.
#[derive(Deserialize)]
struct Button {}

/// Departments in tree order with their depth, for the sidebar and the pickers.
fn tree_order(departments: &[Department]) -> Vec<(usize, &Department)> {
    fn walk<'a>(all: &'a [Department], parent: Option<&str>, depth: usize, out: &mut Vec<(usize, &'a Department)>) {
        let mut children: Vec<&Department> =
            all.iter().filter(|d| d.parent_id.as_ref().map(|p| p.as_str()) == parent).collect();
        children.sort_by_key(|d| (d.order, d.id.to_string()));
        for d in children {
            out.push((depth, d));
            walk(all, Some(d.id.as_str()), depth + 1, out);
        }
    }
    let mut out = Vec::new();
    let ids: Vec<&str> = departments.iter().map(|d| d.id.as_str()).collect();
    // Roots of what this admin sees: departments whose parent is not visible.
    let mut roots: Vec<&Department> =
        departments.iter().filter(|d| d.parent_id.as_ref().is_none_or(|p| !ids.contains(&p.as_str()))).collect();
    roots.sort_by_key(|d| (d.order, d.id.to_string()));
    for r in roots {
        out.push((0, r));
        walk(departments, Some(r.id.as_str()), 1, &mut out);
    }
    out
}

fn department_options(lang: Lang, tree: &[(usize, &Department)], selected: Option<&str>, empty: bool) -> Markup {
    html! {
        @if empty { option value="" { (lang.pick("All departments", "全部部门")) } }
        @for (depth, d) in tree {
            option value=(d.id) selected[selected == Some(d.id.as_str())] { (" ".repeat(depth * 2)) (d.name) }
        }
    }
}

/// A ticked list of departments in tree order.
fn department_ticks(name: &str, prefix: &str, tree: &[(usize, &Department)], ticked: &[String]) -> Markup {
    html! {
        ul.ticks {
            @for (depth, d) in tree {
                @let id = format!("{prefix}{name}-{}", d.id);
                li data-depth=(depth) {
                    label.check for=(id) {
                        input id=(id) type="checkbox" name=(name) value=(d.id) checked[ticked.iter().any(|t| t == d.id.as_str())];
                        " " (d.name)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::page_of;

    #[test]
    fn a_form_goes_back_to_the_page_of_its_record() {
        assert_eq!(page_of("/admin/members/mem_1/status"), "/admin/members/mem_1");
        assert_eq!(page_of("/admin/members/mem_1/devices/dev_1/revoke"), "/admin/members/mem_1");
        assert_eq!(page_of("/admin/members/mem_1"), "/admin/members/mem_1");
        assert_eq!(page_of("/admin/departments"), "/admin/members");
        assert_eq!(page_of("/admin/departments/dep_1/delete"), "/admin/departments/dep_1");
        assert_eq!(page_of("/admin/keys/key_1/delete"), "/admin/keys");
        assert_eq!(page_of("/admin/apps/app_1/secret"), "/admin/apps/app_1");
        assert_eq!(page_of("/admin/policy"), "/admin/policy");
    }
}

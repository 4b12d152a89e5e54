//! Company apps (OpenID Connect clients): registered, edited, their secret replaced, deleted.

use super::edits::AppFields;
use super::*;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use workgate_domain::oidc::apps::{CreateApp, IdTokenAlg};
use workgate_domain::oidc::{App, ClientType, SCOPES};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/apps", get(apps).post(create_app))
        .route("/admin/apps/{id}", get(app_page).post(edit_app))
        .route("/admin/apps/{id}/secret", post(rotate_app_secret))
        .route("/admin/apps/{id}/delete", post(delete_app))
}

async fn apps(State(s): State<AppState>, console: Console, Query(n): Query<Notice>) -> Answer {
    let lang = console.lang;
    let list = console.read("/admin/members", s.services.list_apps(&console.caller).await)?;
    let body = apps_body(lang, &console.token, &list, None);
    Ok(console.page(lang.pick("Apps", "应用"), n.notice.as_deref(), body))
}

#[derive(Deserialize)]
struct AppForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    client_type: String,
    #[serde(default)]
    redirect_uris: String,
    post_logout_redirect_uris: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    id_token_signed_response_alg: Option<String>,
}

async fn create_app(State(s): State<AppState>, ConsoleForm(console, f): ConsoleForm<AppForm>) -> Response {
    let lang = console.lang;
    let mut problems = Problems::default();
    let input = CreateApp {
        name: f.name,
        client_type: Some(f.client_type),
        redirect_uris: edits::lines(&f.redirect_uris),
        post_logout_redirect_uris: edits::lines(f.post_logout_redirect_uris.as_deref().unwrap_or_default()),
        scopes: Some(f.scopes),
        id_token_signed_response_alg: f.id_token_signed_response_alg,
    };
    match s.services.create_app(&console.caller, input).await {
        Ok(created) => {
            let list = problems.keep(lang, s.services.list_apps(&console.caller).await);
            let secret = created.secret.as_ref().map(|s| s.expose().to_string());
            let shown = secret.as_deref().map(|secret| (&created.app, secret));
            let notice = secret.is_none().then(|| lang.pick("App registered.", "应用已注册。"));
            let body = apps_body(lang, &console.token, &list, shown);
            console.page(lang.pick("Apps", "应用"), notice, html! { (problems.markup()) (body) })
        }
        Err(e) => console.refused("/admin/apps", &e),
    }
}

/// One app's page: its settings, changed by a form that saves only what was changed.
async fn app_page(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Answer {
    let lang = console.lang;
    let app = console.read("/admin/apps", s.services.get_app(&console.caller, &id).await)?;
    let fields = AppFields {
        name: app.name.clone(),
        redirect_uris: app.redirect_uris.join("\n"),
        post_logout_redirect_uris: app.post_logout_redirect_uris.join("\n"),
        scopes: app.scopes.clone(),
        id_token_signed_response_alg: app.id_token_alg.as_str().to_string(),
    };
    let body = html! {
        h1 { (app.name) }
        p { "client_id " code { (app.id) } " · " (app.client_type.as_str()) }
        form id="edit-app" method="post" action={ "/admin/apps/" (app.id) } {
            input type="hidden" name="csrf" value=(console.token);
            input type="hidden" name="was" value=(edits::shown(&fields));
            label for="name" { (lang.pick("Name", "名称")) }
            input id="name" name="name" value=(fields.name) required maxlength="64";
            label for="redirect_uris" { (lang.pick("Redirect URIs, one per line", "回调地址，每行一个")) }
            textarea id="redirect_uris" name="redirect_uris" rows="3" required { (fields.redirect_uris) }
            label for="post_logout_redirect_uris" { (lang.pick("After-logout URIs, one per line (optional)", "退出后跳转地址，每行一个（可选）")) }
            textarea id="post_logout_redirect_uris" name="post_logout_redirect_uris" rows="2" { (fields.post_logout_redirect_uris) }
            (scope_ticks(lang, "", &fields.scopes))
            (alg_select(lang, "", app.id_token_alg))
            button type="submit" { (lang.pick("Save", "保存")) }
        }
        p { a href="/admin/apps" { "← " (lang.pick("All apps", "全部应用")) } }
    };
    Ok(console.page(&app.name, n.notice.as_deref(), body))
}

async fn edit_app(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleEdit(console, edit): ConsoleEdit<AppFields>,
) -> Response {
    let lang = console.lang;
    let here = format!("/admin/apps/{id}");
    let update = edits::app_update(&edit);
    if update.name.is_none()
        && update.redirect_uris.is_none()
        && update.post_logout_redirect_uris.is_none()
        && update.scopes.is_none()
        && update.id_token_signed_response_alg.is_none()
    {
        return console.back(&here, lang.pick("Nothing changed.", "没有修改。"));
    }
    console.answer(&here, s.services.update_app(&console.caller, &id, update).await, lang.pick("Saved.", "已保存。"))
}

async fn rotate_app_secret(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleForm(console, Button {}): ConsoleForm<Button>,
) -> Response {
    let lang = console.lang;
    let mut problems = Problems::default();
    match s.services.rotate_app_secret(&console.caller, &id).await {
        Ok(rotated) => {
            let list = problems.keep(lang, s.services.list_apps(&console.caller).await);
            let secret = rotated.secret.as_ref().map(|s| s.expose().to_string()).unwrap_or_default();
            let body = apps_body(lang, &console.token, &list, Some((&rotated.app, &secret)));
            console.page(lang.pick("Apps", "应用"), None, html! { (problems.markup()) (body) })
        }
        Err(e) => console.refused("/admin/apps", &e),
    }
}

async fn delete_app(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleForm(console, Button {}): ConsoleForm<Button>,
) -> Response {
    let done = console.lang.pick("App deleted; its tokens stop working at once.", "应用已删除，其令牌立即失效。");
    console.answer("/admin/apps", s.services.delete_app(&console.caller, &id).await, done)
}

/// The apps page: the enterprise's OpenID Connect clients, a form to register one, and a
/// freshly made secret shown once.
fn apps_body(lang: Lang, token: &str, list: &[App], created: Option<(&App, &str)>) -> Markup {
    html! {
        h1 { (lang.pick("Apps", "应用")) }
        p.muted { (lang.pick("Company apps sign members in with OpenID Connect. The issuer is this server's address.",
            "企业应用通过 OpenID Connect 让成员登录，签发者即本服务器地址。")) }
        @if let Some((app, secret)) = created {
            p.notice role="status" {
                (lang.pick("Copy the client secret of ", "请立即复制以下应用的客户端密钥："))
                strong { (app.name) }
                (lang.pick(" now; it is not shown again:", "，之后将不再显示：")) br;
                "client_id " code { (app.id) } br;
                "client_secret " code id="new-secret" { (secret) }
            }
        }
        table.apps {
            thead { tr {
                th { (lang.pick("Name", "名称")) } th { "client_id" } th { (lang.pick("Type", "类型")) }
                th { (lang.pick("Redirect URIs", "回调地址")) } th {}
            } }
            tbody { @for a in list { tr {
                td { a href={ "/admin/apps/" (a.id) } { (a.name) } } td { code { (a.id) } } td { (a.client_type.as_str()) }
                td { @for u in &a.redirect_uris { code { (u) } br; } }
                td {
                    @if a.client_type == ClientType::Confidential {
                        form.inline method="post" action={ "/admin/apps/" (a.id) "/secret" } {
                            input type="hidden" name="csrf" value=(token);
                            button.secondary type="submit" { (lang.pick("New secret", "重置密钥")) }
                        }
                    }
                    form.inline method="post" action={ "/admin/apps/" (a.id) "/delete" } {
                        input type="hidden" name="csrf" value=(token);
                        button.secondary type="submit" { (lang.pick("Delete", "删除")) }
                    }
                }
            } } }
        }
        h2 { (lang.pick("Register an app", "注册应用")) }
        form method="post" action="/admin/apps" {
            input type="hidden" name="csrf" value=(token);
            label for="app-name" { (lang.pick("Name", "名称")) }
            input id="app-name" name="name" required maxlength="64";
            label for="app-type" { (lang.pick("Type", "类型")) }
            select id="app-type" name="client_type" {
                option value="confidential" selected { (lang.pick("Server-side app (has a secret)", "服务端应用（有密钥）")) }
                option value="public" { (lang.pick("Browser or mobile app (no secret)", "浏览器或移动应用（无密钥）")) }
            }
            label for="app-redirects" { (lang.pick("Redirect URIs, one per line", "回调地址，每行一个")) }
            textarea id="app-redirects" name="redirect_uris" rows="3" required {}
            label for="app-logout" { (lang.pick("After-logout URIs, one per line (optional)", "退出后跳转地址，每行一个（可选）")) }
            textarea id="app-logout" name="post_logout_redirect_uris" rows="2" {}
            (scope_ticks(lang, "app-", &SCOPES.map(str::to_string)))
            (alg_select(lang, "app-", IdTokenAlg::default()))
            button type="submit" { (lang.pick("Register", "注册")) }
        }
    }
}

/// How the app's ID tokens are signed.
fn alg_select(lang: Lang, prefix: &str, chosen: IdTokenAlg) -> Markup {
    let id = format!("{prefix}id-token-alg");
    html! {
        label for=(id) { (lang.pick("ID tokens signed with", "ID 令牌签名算法")) }
        select id=(id) name="id_token_signed_response_alg" {
            @for alg in IdTokenAlg::ALL {
                option value=(alg.as_str()) selected[alg == chosen] {
                    (alg.as_str())
                    @if alg == IdTokenAlg::Rs256 { " " (lang.pick("(every library accepts it)", "（所有库都支持）")) }
                }
            }
        }
    }
}

/// The scopes an app may ask for, as ticks.
fn scope_ticks(lang: Lang, prefix: &str, ticked: &[String]) -> Markup {
    html! {
        fieldset {
            legend { (lang.pick("Scopes the app may ask for", "应用可申请的权限范围")) }
            @for scope in SCOPES {
                @let id = format!("{prefix}scope-{scope}");
                label.check for=(id) {
                    input id=(id) type="checkbox" name="scopes" value=(scope) checked[ticked.iter().any(|t| t == scope)];
                    " " code { (scope) }
                }
            }
        }
    }
}

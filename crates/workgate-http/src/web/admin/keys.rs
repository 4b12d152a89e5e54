//! API keys: made by owners (the secret shown once), listed, deleted.

use super::*;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use workgate_domain::enterprises::CreateApiKey;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/keys", get(keys).post(create_key)).route("/admin/keys/{id}/delete", post(delete_key))
}

async fn keys(State(s): State<AppState>, console: Console, Query(n): Query<Notice>) -> Answer {
    let lang = console.lang;
    let list = console.read("/admin/members", s.services.list_api_keys(&console.caller).await)?;
    let body = keys_body(lang, &console.token, &list, None);
    Ok(console.page(lang.pick("API keys", "API 密钥"), n.notice.as_deref(), body))
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
}

async fn create_key(State(s): State<AppState>, ConsoleForm(console, f): ConsoleForm<KeyForm>) -> Response {
    let lang = console.lang;
    let mut problems = Problems::default();
    match s.services.create_api_key(&console.caller, CreateApiKey { name: f.name }).await {
        Ok(created) => {
            // Shown in this answer only; a reload does not show it again.
            let list = problems.keep(lang, s.services.list_api_keys(&console.caller).await);
            let body = keys_body(lang, &console.token, &list, Some(created.secret.expose()));
            console.page(lang.pick("API keys", "API 密钥"), None, html! { (problems.markup()) (body) })
        }
        Err(e) => console.refused("/admin/keys", &e),
    }
}

async fn delete_key(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleForm(console, Button {}): ConsoleForm<Button>,
) -> Response {
    let done = console.lang.pick("Key deleted; it stops working at once.", "密钥已删除，立即失效。");
    console.answer("/admin/keys", s.services.delete_api_key(&console.caller, &id).await, done)
}

fn keys_body(lang: Lang, token: &str, list: &[workgate_domain::model::ApiKey], created: Option<&str>) -> Markup {
    html! {
        h1 { (lang.pick("API keys", "API 密钥")) }
        @if let Some(k) = created {
            p.notice role="status" { (lang.pick("Copy the new key now; it is not shown again:", "请立即复制新密钥，之后将不再显示：")) br; code id="new-key" { (k) } }
        }
        table { thead { tr { th { (lang.pick("Name", "名称")) } th { (lang.pick("Starts with", "前缀")) } th { (lang.pick("Created", "创建时间")) } th {} } }
            tbody { @for k in list { tr {
                td { (k.name) } td { code { (k.prefix) "…" } } td { (k.created_at.to_rfc3339()) }
                td { form.inline method="post" action={ "/admin/keys/" (k.id) "/delete" } {
                    input type="hidden" name="csrf" value=(token);
                    button.secondary type="submit" { (lang.pick("Delete", "删除")) }
                } }
            } } }
        }
        form method="post" action="/admin/keys" {
            input type="hidden" name="csrf" value=(token);
            label for="key-name" { (lang.pick("New key's name", "新密钥名称")) }
            input id="key-name" name="name" required;
            button type="submit" { (lang.pick("Create key", "创建密钥")) }
        }
    }
}

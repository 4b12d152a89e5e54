//! The audit log, filtered by action and actor.

use super::*;
use axum::extract::{Query, State};
use axum::routing::get;
use workgate_domain::audit::AuditQuery;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(audit))
}

#[derive(Deserialize, Default)]
struct AuditFilterForm {
    action: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
}

async fn audit(State(s): State<AppState>, console: Console, Query(q): Query<AuditFilterForm>) -> Response {
    let lang = console.lang;
    let query = AuditQuery {
        action: q.action.clone().filter(|a| !a.is_empty()),
        actor: q.actor.clone().filter(|a| !a.is_empty()),
        cursor: q.cursor.clone(),
        ..Default::default()
    };
    let (entries, error) = match s.services.list_audit(&console.caller, query).await {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(failure(lang, &e))),
    };
    let body = html! {
        h1 { (lang.pick("Audit log", "操作日志")) }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.filters method="get" action="/admin/audit" {
            label for="action" { (lang.pick("Action (e.g. member or member.disable)", "操作（如 member 或 member.disable）")) }
            input id="action" name="action" value=(q.action.clone().unwrap_or_default());
            label for="actor" { (lang.pick("Actor (e.g. member:mem_… or api_key:key_…)", "操作者（如 member:mem_…）")) }
            input id="actor" name="actor" value=(q.actor.clone().unwrap_or_default());
            button type="submit" { (lang.pick("Filter", "筛选")) }
        }
        table.audit {
            thead { tr { th { (lang.pick("When", "时间")) } th { (lang.pick("Who", "操作者")) } th { (lang.pick("Action", "操作")) } th { (lang.pick("Target", "对象")) } th { "IP" } } }
            tbody { @for e in entries.as_ref().map(|p| p.items.as_slice()).unwrap_or(&[]) { tr {
                td { (e.at.to_rfc3339()) } td { (e.actor) } td.action { (e.action) } td { (e.target.clone().unwrap_or_default()) } td { (e.ip.clone().unwrap_or_default()) }
            } } }
        }
        @if let Some(c) = entries.as_ref().and_then(|p| p.next_cursor.clone()) {
            p { a href={ "/admin/audit?cursor=" (c) "&action=" (q.action.clone().unwrap_or_default()) "&actor=" (q.actor.clone().unwrap_or_default()) } { (lang.pick("Older", "更早")) " →" } }
        }
    };
    console.page(lang.pick("Audit log", "操作日志"), None, body)
}

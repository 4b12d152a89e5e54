//! Bulk import of members from a CSV file, with a result per row.

use super::*;
use axum::extract::{Multipart, State};
use axum::routing::get;
use workgate_domain::import::{RowStatus, parse_csv};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/import", get(import_page).post(import))
}

async fn import_page(console: Console) -> Response {
    let lang = console.lang;
    let body = html! {
        h1 { (lang.pick("Import members", "批量导入成员")) }
        p.muted { (lang.pick("Rows are matched by userid, else by number; importing the same file again changes nothing. Departments are paths below the root, like Engineering/Backend.", "按 userid（否则按手机号）匹配；重复导入同一文件不会产生变化。部门写作根部门以下的路径，如 研发/后端。")) }
        (import_form(lang, &console.token))
    };
    console.page(lang.pick("Import", "批量导入"), None, body)
}

async fn import(State(s): State<AppState>, console: Console, mut multipart: Multipart) -> Response {
    let lang = console.lang;
    let mut csrf_value = String::new();
    let mut file = Vec::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("csrf") => csrf_value = field.text().await.unwrap_or_default(),
            Some("file") => file = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    if !csrf_ok(&s, &console.jar, &csrf_value) {
        return console.back("/admin/import", lang.error("csrf"));
    }
    let outcome = match parse_csv(&file) {
        Ok(records) => s.services.import_members(&console.caller, records, &|_, _| {}).await,
        Err(e) => Err(e),
    };
    let body = match outcome {
        Ok(report) => html! {
            h1 { (lang.pick("Import finished", "导入完成")) }
            p id="summary" {
                (report.created) " " (lang.pick("created", "新增")) ", " (report.updated) " " (lang.pick("updated", "更新")) ", "
                (report.unchanged) " " (lang.pick("unchanged", "未变")) ", " (report.failed) " " (lang.pick("failed", "失败"))
            }
            table {
                thead { tr { th { "#" } th { (lang.pick("Result", "结果")) } th { (lang.pick("Reason", "原因")) } } }
                tbody { @for r in &report.rows { tr.(if r.status == RowStatus::Failed { "failed" } else { "ok" }) {
                    td { (r.row) } td { (format!("{:?}", r.status).to_lowercase()) }
                    td {
                        (r.error.as_ref().map(|e| e.detail.clone()).unwrap_or_default())
                        @if r.invitation == Some("deferred") {
                            (lang.pick("Invitation deferred (hourly budget spent): re-send it later", "邀请已延后（每小时额度已用完）：请稍后重发"))
                        }
                    }
                } } }
            }
            (import_form(lang, &console.token))
        },
        Err(e) => html! {
            h1 { (lang.pick("Import members", "批量导入成员")) }
            p.error role="alert" { (failure(lang, &e)) }
            (import_form(lang, &console.token))
        },
    };
    console.page(lang.pick("Import", "批量导入"), None, body)
}

fn import_form(lang: Lang, token: &str) -> Markup {
    html! {
        form id="import" method="post" action="/admin/import" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(token);
            label for="file" { (lang.pick("CSV file (userid,name,phone,email,title,departments)", "CSV 文件（userid,name,phone,email,title,departments）")) }
            input id="file" name="file" type="file" accept=".csv,text/csv" required;
            button type="submit" data-busy=(lang.pick("Importing…", "正在导入…")) { (lang.pick("Import", "导入")) }
        }
    }
}

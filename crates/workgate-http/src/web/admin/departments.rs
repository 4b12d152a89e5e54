//! Departments: adding one (from the members page), a department's page (rename, move,
//! reorder) and deleting an empty one.

use super::edits::DepartmentFields;
use super::*;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use workgate_domain::directory::NewDepartmentInput;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/departments", post(add_department))
        .route("/admin/departments/{id}", get(department).post(edit_department))
        .route("/admin/departments/{id}/delete", post(delete_department))
}

#[derive(Deserialize)]
struct DepartmentForm {
    name: String,
    parent_id: Option<String>,
}

async fn add_department(State(s): State<AppState>, ConsoleForm(console, f): ConsoleForm<DepartmentForm>) -> Response {
    let lang = console.lang;
    let input = NewDepartmentInput { name: f.name, parent_id: f.parent_id.filter(|p| !p.is_empty()), order: None };
    console.answer(
        "/admin/members",
        s.services.create_department(&console.caller, input).await,
        lang.pick("Department added.", "已添加部门。"),
    )
}

async fn department(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Answer {
    let lang = console.lang;
    let mut problems = Problems::default();
    let d = console.read("/admin/members", s.services.get_department(&console.caller, &id).await)?;
    let departments = problems.keep(lang, s.services.list_departments(&console.caller).await);
    let tree = tree_order(&departments);
    // The parent is offered only where this admin sees it: a select whose current value is missing
    // would silently move the department to its first option.
    let parent_shown = d.parent_id.as_ref().filter(|p| departments.iter().any(|v| &v.id == *p));
    let fields = DepartmentFields {
        name: d.name.to_string(),
        parent_id: parent_shown.map(|p| p.to_string()).unwrap_or_default(),
        order: d.order.to_string(),
    };
    let body = html! {
        h1 { (d.name) }
        p { a href={ "/admin/members?department=" (d.id) } { (lang.pick("Members of this department", "本部门成员")) } }
        form id="edit-department" method="post" action={ "/admin/departments/" (d.id) } {
            input type="hidden" name="csrf" value=(console.token);
            input type="hidden" name="was" value=(edits::shown(&fields));
            label for="name" { (lang.pick("Name", "名称")) }
            input id="name" name="name" value=(fields.name) required;
            @if parent_shown.is_some() {
                label for="parent_id" { (lang.pick("Under", "上级部门")) }
                select id="parent_id" name="parent_id" { (department_options(lang, &tree, Some(fields.parent_id.as_str()), false)) }
            }
            label for="order" { (lang.pick("Position among siblings", "同级排序")) }
            input id="order" name="order" type="number" value=(fields.order);
            button type="submit" { (lang.pick("Save", "保存")) }
        }
        @if d.parent_id.is_some() {
            form method="post" action={ "/admin/departments/" (d.id) "/delete" } {
                input type="hidden" name="csrf" value=(console.token);
                p.muted { (lang.pick("Only an empty department (no sub-departments, no members) can be deleted.", "只能删除没有下级部门和成员的部门。")) }
                button.secondary type="submit" { (lang.pick("Delete department", "删除部门")) }
            }
        }
    };
    Ok(console.page(d.name.as_str(), n.notice.as_deref(), html! { (problems.markup()) (body) }))
}

async fn edit_department(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleEdit(console, edit): ConsoleEdit<DepartmentFields>,
) -> Response {
    let lang = console.lang;
    let here = format!("/admin/departments/{id}");
    let patch = match edits::department_patch(&edit) {
        Ok(Some(patch)) => patch,
        Ok(None) => return console.back(&here, lang.pick("Nothing changed.", "没有修改。")),
        Err(e) => return console.refused(&here, &e),
    };
    console.answer(
        &here,
        s.services.update_department(&console.caller, &id, patch).await,
        lang.pick("Saved.", "已保存。"),
    )
}

async fn delete_department(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleForm(console, Button {}): ConsoleForm<Button>,
) -> Response {
    let lang = console.lang;
    let here = format!("/admin/departments/{id}");
    match s.services.delete_department(&console.caller, &id).await {
        Ok(()) => console.back("/admin/members", lang.pick("Department deleted.", "部门已删除。")),
        Err(e) => console.refused(&here, &e),
    }
}

//! The admin console (`/admin`): the directory, a member's invitations, devices and sessions, bulk
//! import, the policy, the audit log, API keys and apps, for owners and admins (and department admins within
//! their subtrees — the domain decides what each may see and do).
//!
//! Pages are server-rendered; every change is a POST with the CSRF token, answered with a redirect
//! (so a reload never repeats it) carrying a short notice.

use super::edits::{self, AppFields, DepartmentFields, Edit, MemberFields, PolicyFields};
use super::i18n::Lang;
use super::pages::layout;
use super::{browser_session, csrf, csrf_ok};
use crate::AppState;
use crate::routes::login::Client;
use axum::Router;
use axum::extract::{Form, Multipart, Path, Query, RawForm, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use maud::{Markup, html};
use serde::Deserialize;
use workgate_domain::Error;
use workgate_domain::audit::{AuditQuery, Caller};
use workgate_domain::directory::{ListMembersQuery, NewDepartmentInput, NewMemberInput, StatusChange};
use workgate_domain::enterprises::CreateApiKey;
use workgate_domain::import::{RowStatus, parse_csv};
use workgate_domain::model::Department;
use workgate_domain::oidc::apps::CreateApp;
use workgate_domain::oidc::{App, ClientType, SCOPES};
use workgate_domain::values::Role;

fn tr(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    if lang == Lang::Zh { zh } else { en }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/members") }))
        .route("/admin/members", get(members).post(add_member))
        .route("/admin/members/{id}", get(member).post(edit_member))
        .route("/admin/members/{id}/status", get(confirm_status).post(change_status))
        .route("/admin/members/{id}/invitation", post(resend_invitation))
        .route("/admin/members/{id}/devices/{device}/{action}", post(device_action))
        .route("/admin/departments", post(add_department))
        .route("/admin/departments/{id}", get(department).post(edit_department))
        .route("/admin/departments/{id}/delete", post(delete_department))
        .route("/admin/import", get(import_page).post(import))
        .route("/admin/policy", get(policy_page).post(save_policy))
        .route("/admin/audit", get(audit))
        .route("/admin/keys", get(keys).post(create_key))
        .route("/admin/keys/{id}/delete", post(delete_key))
        .route("/admin/apps", get(apps).post(create_app))
        .route("/admin/apps/{id}", get(app_page).post(edit_app))
        .route("/admin/apps/{id}/secret", post(rotate_app_secret))
        .route("/admin/apps/{id}/delete", post(delete_app))
}

/// The signed-in admin behind the browser's cookies, or the response that replaces the page.
async fn admin(
    s: &AppState,
    jar: CookieJar,
    client: workgate_domain::login::ClientInfo,
) -> Result<(CookieJar, Caller, String), Response> {
    let (jar, session) = browser_session(s, jar, client.clone()).await;
    let Some(session) = session else { return Err((jar, Redirect::to("/login")).into_response()) };
    let ip = client.ip.map(|ip| ip.to_string());
    match s.services.admin_caller(&session, ip).await {
        Ok(caller) => {
            let (jar, csrf_token) = csrf(s, jar);
            Ok((jar, caller, csrf_token))
        }
        Err(_) => {
            Err((StatusCode::FORBIDDEN, jar, Html("This page is for administrators.".to_string())).into_response())
        }
    }
}

fn shell(lang: Lang, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    layout(
        lang,
        title,
        html! {
            nav.admin aria-label="Admin" {
                a href="/admin/members" { (tr(lang, "Members", "成员")) }
                a href="/admin/import" { (tr(lang, "Import", "批量导入")) }
                a href="/admin/policy" { (tr(lang, "Policy", "安全策略")) }
                a href="/admin/audit" { (tr(lang, "Audit log", "操作日志")) }
                a href="/admin/keys" { (tr(lang, "API keys", "API 密钥")) }
                a href="/admin/apps" { (tr(lang, "Apps", "应用")) }
                a href="/" { (tr(lang, "My account", "我的账号")) }
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
        Error::InvalidPhone { detail } => detail.clone(),
        _ => base.to_string(),
    }
}

fn back(to: &str, notice: &str) -> Response {
    let encoded: String = form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{to}{}notice={encoded}", if to.contains('?') { '&' } else { '?' })).into_response()
}

#[derive(Deserialize, Default)]
struct Notice {
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
struct MembersQuery {
    q: Option<String>,
    status: Option<String>,
    department: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
    #[allow(dead_code)]
    lang: Option<String>,
}

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
        @if empty { option value="" { (tr(lang, "All departments", "全部部门")) } }
        @for (depth, d) in tree {
            option value=(d.id) selected[selected == Some(d.id.as_str())] { (" ".repeat(depth * 2)) (d.name) }
        }
    }
}

/// The roles this caller may set on a member holding `current` (a new member: `Role::Member`);
/// empty when the caller may not change the member's role at all.
fn role_choices(caller: &Caller, current: Role) -> Vec<Role> {
    if caller.department_scope().is_some() || !caller.outranks(current) {
        return vec![];
    }
    [Role::Member, Role::DepartmentAdmin, Role::Admin, Role::Owner]
        .into_iter()
        .filter(|r| *r == current || caller.may_grant(*r))
        .collect()
}

fn role_name(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::Owner => tr(lang, "Owner", "所有者"),
        Role::Admin => tr(lang, "Admin", "管理员"),
        Role::DepartmentAdmin => tr(lang, "Department admin", "部门管理员"),
        Role::Member => tr(lang, "Member", "成员"),
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

/// The fields of a member, for the add form (`prefix` "new-") and the edit form: everything the
/// API can set that this caller may change. `outside` counts departments the form cannot show.
fn member_fields(
    lang: Lang,
    prefix: &str,
    tree: &[(usize, &Department)],
    fields: &MemberFields,
    roles: &[Role],
    outside: usize,
) -> Markup {
    let optional = html! { " " span.muted { (tr(lang, "(optional)", "（可选）")) } };
    html! {
        label for={ (prefix) "name" } { (tr(lang, "Name", "姓名")) }
        input id={ (prefix) "name" } name="name" value=(fields.name) required;
        label for={ (prefix) "phone" } { (tr(lang, "Mobile number", "手机号")) }
        input id={ (prefix) "phone" } name="phone" type="tel" value=(fields.phone) required;
        label for={ (prefix) "userid" } { "userid" @if prefix == "new-" { (optional) } }
        input id={ (prefix) "userid" } name="userid" value=(fields.userid);
        label for={ (prefix) "email" } { (tr(lang, "E-mail", "邮箱")) (optional) }
        input id={ (prefix) "email" } name="email" type="email" value=(fields.email);
        label for={ (prefix) "title" } { (tr(lang, "Title", "职务")) (optional) }
        input id={ (prefix) "title" } name="title" value=(fields.title);
        fieldset {
            legend { (tr(lang, "Departments", "所属部门")) }
            (department_ticks("departments", prefix, tree, &fields.departments))
            @if outside > 0 {
                p.muted { (tr(lang, "Also in departments outside the ones you administer: ", "另属于您管理范围之外的部门：")) (outside) (tr(lang, "; saving keeps them.", "个，保存时保留。")) }
            }
        }
        @if !roles.is_empty() {
            label for={ (prefix) "role" } { (tr(lang, "Role", "角色")) }
            select id={ (prefix) "role" } name="role" {
                @for r in roles { option value=(r.as_str()) selected[fields.role == r.as_str()] { (role_name(lang, *r)) } }
            }
            fieldset {
                legend { (tr(lang, "Departments they administer (department admins only)", "管理的部门（仅部门管理员）")) }
                (department_ticks("admin_departments", prefix, tree, &fields.admin_departments))
            }
        }
    }
}

async fn members(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Query(q): Query<MembersQuery>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let departments = s.services.list_departments(&caller).await.unwrap_or_default();
    let tree = tree_order(&departments);
    let query = ListMembersQuery {
        department: q.department.clone().filter(|d| !d.is_empty()),
        status: q.status.clone().filter(|d| !d.is_empty()),
        q: q.q.clone(),
        cursor: q.cursor.clone(),
        limit: Some(50),
    };
    let (page, error) = match s.services.list_members(&caller, query).await {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(failure(lang, &e))),
    };
    let name_of = |id: &workgate_domain::ids::DepartmentId| {
        departments.iter().find(|d| &d.id == id).map(|d| d.name.to_string()).unwrap_or_default()
    };
    let next_link = page.as_ref().and_then(|p| p.next_cursor.clone()).map(|c| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("q", &q.q), ("status", &q.status), ("department", &q.department)] {
            if let Some(v) = v {
                params.append_pair(k, v);
            }
        }
        params.append_pair("cursor", &c);
        format!("/admin/members?{}", params.finish())
    });
    // A new member starts in the first department shown (the root, or the admin's first subtree).
    let new_member = MemberFields {
        departments: tree.first().map(|(_, d)| d.id.to_string()).into_iter().collect(),
        role: Role::Member.as_str().to_string(),
        ..Default::default()
    };
    let body = html! {
        h1 { (tr(lang, "Members", "成员")) }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.filters method="get" action="/admin/members" {
            label for="q" { (tr(lang, "Search name, userid or number", "搜索姓名、账号或手机号")) }
            input id="q" name="q" type="search" value=(q.q.clone().unwrap_or_default());
            label for="status" { (tr(lang, "Status", "状态")) }
            select id="status" name="status" {
                option value="" { (tr(lang, "All but departed", "除已离职外全部")) }
                @for st in ["invited", "active", "disabled", "departed"] {
                    option value=(st) selected[q.status.as_deref() == Some(st)] { (st) }
                }
            }
            label for="department" { (tr(lang, "Department (with sub-departments)", "部门（含下级）")) }
            select id="department" name="department" { (department_options(lang, &tree, q.department.as_deref(), true)) }
            button type="submit" { (tr(lang, "Filter", "筛选")) }
        }
        table.members {
            thead { tr {
                th { (tr(lang, "Name", "姓名")) } th { "userid" } th { (tr(lang, "Number", "手机号")) }
                th { (tr(lang, "Departments", "部门")) } th { (tr(lang, "Role", "角色")) } th { (tr(lang, "Status", "状态")) }
            } }
            tbody {
                @for m in page.as_ref().map(|p| p.items.as_slice()).unwrap_or(&[]) {
                    tr {
                        td { a href={ "/admin/members/" (m.id) } { (m.name) } }
                        td { (m.userid) } td { (m.phone) }
                        td { (m.departments.iter().map(name_of).collect::<Vec<_>>().join(", ")) }
                        td { (m.role.as_str()) } td.status { (m.status.as_str()) }
                    }
                }
            }
        }
        @if let Some(link) = next_link { p { a href=(link) { (tr(lang, "Next page", "下一页")) " →" } } }
        h2 { (tr(lang, "Add a member", "添加成员")) }
        form id="add-member" method="post" action="/admin/members" {
            input type="hidden" name="csrf" value=(token);
            (member_fields(lang, "new-", &tree, &new_member, &role_choices(&caller, Role::Member), 0))
            button type="submit" { (tr(lang, "Add and send the invitation", "添加并发送邀请")) }
        }
        h2 { (tr(lang, "Departments", "部门")) }
        ul.tree { @for (depth, d) in &tree { li { (" ".repeat(depth * 2)) a href={ "/admin/departments/" (d.id) } { (d.name) } } } }
        form method="post" action="/admin/departments" {
            input type="hidden" name="csrf" value=(token);
            label for="dep-name" { (tr(lang, "New department", "新部门")) }
            input id="dep-name" name="name" required;
            label for="dep-parent" { (tr(lang, "Under", "上级部门")) }
            select id="dep-parent" name="parent_id" { (department_options(lang, &tree, None, false)) }
            button.secondary type="submit" { (tr(lang, "Add department", "添加部门")) }
        }
    };
    (jar, Html(shell(lang, tr(lang, "Members", "成员"), q.notice.as_deref(), body).into_string())).into_response()
}

async fn add_member(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let form = match Edit::<MemberFields>::parse(&body) {
        Ok(form) => form,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    if !csrf_ok(&s, &jar, &form.csrf) {
        return (jar, back("/admin/members", lang.error("csrf"))).into_response();
    }
    let f = form.now;
    let given = |v: String| (!v.trim().is_empty()).then_some(v);
    let listed = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let input = NewMemberInput {
        name: f.name,
        phone: f.phone,
        userid: given(f.userid),
        email: given(f.email),
        title: given(f.title),
        departments: listed(f.departments),
        role: given(f.role),
        admin_departments: listed(f.admin_departments),
        invite: None,
    };
    match s.services.add_member(&caller, input).await {
        Ok(m) => (
            jar,
            back(
                &format!("/admin/members/{}", m.id),
                tr(lang, "Member added; the invitation is on its way.", "已添加成员，邀请短信正在发送。"),
            ),
        )
            .into_response(),
        Err(e) => (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    }
}

async fn member(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let m = match s.services.get_member(&caller, &id).await {
        Ok(m) => m,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    let invitations = s.services.list_invitations(&caller, &id).await.unwrap_or_default();
    let devices = s.services.member_devices(&caller, &id).await.unwrap_or_default();
    let sessions = s.services.member_sessions(&caller, &id).await.unwrap_or_default();
    let departments = s.services.list_departments(&caller).await.unwrap_or_default();
    let tree = tree_order(&departments);
    let roles = role_choices(&caller, m.role);
    let visible = |ids: &[workgate_domain::ids::DepartmentId]| -> Vec<String> {
        ids.iter().filter(|d| departments.iter().any(|v| &v.id == *d)).map(|d| d.to_string()).collect()
    };
    let fields = MemberFields {
        name: m.name.to_string(),
        phone: m.phone.to_string(),
        userid: m.userid.to_string(),
        email: m.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        title: m.title.as_ref().map(|t| t.to_string()).unwrap_or_default(),
        departments: visible(&m.departments),
        role: if roles.is_empty() { String::new() } else { m.role.as_str().to_string() },
        admin_departments: if roles.is_empty() { vec![] } else { visible(&m.admin_departments) },
    };
    let outside = m.departments.len() - fields.departments.len();
    let body = html! {
        h1 { (m.name) " " span.status { (m.status.as_str()) } }
        p { (m.phone) " · userid " (m.userid) " · " (m.role.as_str()) }
        form id="edit-member" method="post" action={ "/admin/members/" (m.id) } {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="was" value=(edits::shown(&fields));
            (member_fields(lang, "", &tree, &fields, &roles, outside))
            button type="submit" { (tr(lang, "Save", "保存")) }
        }
        h2 { (tr(lang, "Status", "状态")) }
        p {
            @for (action, en, zh) in [("disable", "Disable", "停用"), ("enable", "Enable", "启用"), ("depart", "Mark as departed", "办理离职")] {
                a.button.secondary href={ "/admin/members/" (m.id) "/status?action=" (action) } { (tr(lang, en, zh)) } " "
            }
        }
        h2 { (tr(lang, "Invitations", "邀请")) }
        table {
            thead { tr { th { (tr(lang, "Sent", "发送时间")) } th { (tr(lang, "State", "状态")) } th { (tr(lang, "SMS delivery", "短信送达")) } } }
            tbody { @for i in &invitations { tr {
                td { (i.created_at.to_rfc3339()) } td { (i.state.as_str()) }
                td.delivery { (i.delivery.as_ref().map(|d| d.state.clone()).unwrap_or_default()) }
            } } }
        }
        form method="post" action={ "/admin/members/" (m.id) "/invitation" } {
            input type="hidden" name="csrf" value=(token);
            button.secondary type="submit" { (tr(lang, "Send the invitation again", "重新发送邀请")) }
        }
        h2 { (tr(lang, "Devices", "设备")) }
        table {
            thead { tr { th { (tr(lang, "Device", "设备")) } th { (tr(lang, "State", "状态")) } th { (tr(lang, "Last seen", "最近使用")) } th {} } }
            tbody { @for d in &devices { tr {
                td { (d.name.clone().or(d.platform.clone()).unwrap_or_else(|| d.id.to_string())) }
                td { (d.state) } td { (d.last_seen_at.to_rfc3339()) }
                td {
                    @if d.state == "pending" {
                        form.inline method="post" action={ "/admin/members/" (m.id) "/devices/" (d.id) "/approve" } {
                            input type="hidden" name="csrf" value=(token);
                            button type="submit" { (tr(lang, "Approve", "批准")) }
                        }
                    }
                    @if d.state != "revoked" {
                        form.inline method="post" action={ "/admin/members/" (m.id) "/devices/" (d.id) "/revoke" } {
                            input type="hidden" name="csrf" value=(token);
                            button.secondary type="submit" { (tr(lang, "Sign out", "移除")) }
                        }
                    }
                }
            } } }
        }
        h2 { (tr(lang, "Sessions", "会话")) }
        table.sessions {
            thead { tr {
                th { (tr(lang, "Signed in on", "登录于")) } th { (tr(lang, "Since", "开始时间")) }
                th { (tr(lang, "Last used", "最近使用")) } th { (tr(lang, "State", "状态")) }
            } }
            tbody { @for x in &sessions { tr {
                td {
                    @if x.kind == "app" { (tr(lang, "App: ", "应用：")) }
                    (x.holder_name.clone().unwrap_or_else(|| x.holder_id.clone()))
                }
                td { (x.created_at.to_rfc3339()) } td { (x.last_used_at.to_rfc3339()) }
                td { @match (&x.ended_at, &x.ended_reason) {
                    (None, _) => (tr(lang, "active", "有效")),
                    (Some(_), reason) => { (tr(lang, "ended", "已结束")) @if let Some(r) = reason { " (" (r) ")" } }
                } }
            } } }
        }
    };
    (jar, Html(shell(lang, m.name.as_str(), n.notice.as_deref(), body).into_string())).into_response()
}

async fn edit_member(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/members/{id}");
    let edit = match Edit::<MemberFields>::parse(&body) {
        Ok(edit) => edit,
        Err(e) => return (jar, back(&here, &failure(lang, &e))).into_response(),
    };
    if !csrf_ok(&s, &jar, &edit.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    // The change applies to the member as stored now, not as the page showed it.
    let current = match s.services.get_member(&caller, &id).await {
        Ok(m) => m,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    let strings = |ids: &[workgate_domain::ids::DepartmentId]| ids.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let patch = edits::member_patch(&edit, &strings(&current.departments), &strings(&current.admin_departments));
    if edits::member_patch_is_empty(&patch) {
        return (jar, back(&here, tr(lang, "Nothing changed.", "没有修改。"))).into_response();
    }
    match s.services.update_member(&caller, &id, patch).await {
        Ok(_) => (jar, back(&here, tr(lang, "Saved.", "已保存。"))).into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    action: String,
}

/// The confirmation step before a status change.
async fn confirm_status(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(m) = s.services.get_member(&caller, &id).await else {
        return (jar, Redirect::to("/admin/members")).into_response();
    };
    let question = match q.action.as_str() {
        "disable" => tr(
            lang,
            "Disable this member? Every session and device of theirs ends at once.",
            "确定停用该成员？其所有会话和设备将立即失效。",
        ),
        "enable" => tr(lang, "Enable this member again?", "确定重新启用该成员？"),
        _ => tr(
            lang,
            "Mark this member as departed? Their access ends everywhere and the record is kept for the audit trail; this cannot be undone.",
            "确定办理离职？其所有访问将立即终止，记录保留用于审计，且不可撤销。",
        ),
    };
    let body = html! {
        h1 { (m.name) }
        p { (question) }
        form method="post" action={ "/admin/members/" (m.id) "/status" } {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="action" value=(q.action);
            button id="confirm" type="submit" { (tr(lang, "Yes, continue", "确认")) }
        }
        p { a href={ "/admin/members/" (m.id) } { (tr(lang, "Cancel", "取消")) } }
    };
    (jar, Html(shell(lang, m.name.as_str(), None, body).into_string())).into_response()
}

#[derive(Deserialize)]
struct StatusForm {
    csrf: String,
    action: String,
}

async fn change_status(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/members/{id}");
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    let change = match f.action.as_str() {
        "disable" => StatusChange::Disable,
        "enable" => StatusChange::Enable,
        "depart" => StatusChange::Depart,
        _ => return (jar, back(&here, lang.error("validation_failed"))).into_response(),
    };
    match s.services.change_member_status(&caller, &id, change).await {
        Ok(m) => (jar, back(&here, &format!("{} {}", tr(lang, "Status is now", "当前状态："), m.status.as_str())))
            .into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn resend_invitation(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/members/{id}");
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    match s.services.resend_invitation(&caller, &id).await {
        Ok(_) => (
            jar,
            back(
                &here,
                tr(
                    lang,
                    "A new invitation is on its way; the old link no longer works.",
                    "新的邀请已发送，旧链接已失效。",
                ),
            ),
        )
            .into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

async fn device_action(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path((id, device, action)): Path<(String, String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/members/{id}");
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    let result = match action.as_str() {
        "approve" => s.services.approve_member_device(&caller, &id, &device).await,
        "revoke" => s.services.revoke_member_device(&caller, &id, &device).await,
        _ => Err(Error::NotFound("action")),
    };
    match result {
        Ok(()) => (jar, back(&here, tr(lang, "Done.", "已完成。"))).into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

#[derive(Deserialize)]
struct DepartmentForm {
    csrf: String,
    name: String,
    parent_id: Option<String>,
}

async fn add_department(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Form(f): Form<DepartmentForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back("/admin/members", lang.error("csrf"))).into_response();
    }
    let input = NewDepartmentInput { name: f.name, parent_id: f.parent_id.filter(|p| !p.is_empty()), order: None };
    match s.services.create_department(&caller, input).await {
        Ok(_) => (jar, back("/admin/members", tr(lang, "Department added.", "已添加部门。"))).into_response(),
        Err(e) => (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    }
}

fn import_form(lang: Lang, token: &str) -> Markup {
    html! {
        form id="import" method="post" action="/admin/import" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(token);
            label for="file" { (tr(lang, "CSV file (userid,name,phone,email,title,departments)", "CSV 文件（userid,name,phone,email,title,departments）")) }
            input id="file" name="file" type="file" accept=".csv,text/csv" required;
            button type="submit" data-busy=(tr(lang, "Importing…", "正在导入…")) { (tr(lang, "Import", "导入")) }
        }
    }
}

async fn import_page(State(s): State<AppState>, Client(client): Client, lang: Lang, jar: CookieJar) -> Response {
    let (jar, _, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = html! {
        h1 { (tr(lang, "Import members", "批量导入成员")) }
        p.muted { (tr(lang, "Rows are matched by userid, else by number; importing the same file again changes nothing. Departments are paths below the root, like Engineering/Backend.", "按 userid（否则按手机号）匹配；重复导入同一文件不会产生变化。部门写作根部门以下的路径，如 研发/后端。")) }
        (import_form(lang, &token))
    };
    (jar, Html(shell(lang, tr(lang, "Import", "批量导入"), None, body).into_string())).into_response()
}

async fn import(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    mut multipart: Multipart,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut csrf_value = String::new();
    let mut file = Vec::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("csrf") => csrf_value = field.text().await.unwrap_or_default(),
            Some("file") => file = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    if !csrf_ok(&s, &jar, &csrf_value) {
        return (jar, back("/admin/import", lang.error("csrf"))).into_response();
    }
    let outcome = match parse_csv(&file) {
        Ok(records) => s.services.import_members(&caller, records, &|_, _| {}).await,
        Err(e) => Err(e),
    };
    let body = match outcome {
        Ok(report) => html! {
            h1 { (tr(lang, "Import finished", "导入完成")) }
            p id="summary" {
                (report.created) " " (tr(lang, "created", "新增")) ", " (report.updated) " " (tr(lang, "updated", "更新")) ", "
                (report.unchanged) " " (tr(lang, "unchanged", "未变")) ", " (report.failed) " " (tr(lang, "failed", "失败"))
            }
            table {
                thead { tr { th { "#" } th { (tr(lang, "Result", "结果")) } th { (tr(lang, "Reason", "原因")) } } }
                tbody { @for r in &report.rows { tr.(if r.status == RowStatus::Failed { "failed" } else { "ok" }) {
                    td { (r.row) } td { (format!("{:?}", r.status).to_lowercase()) }
                    td {
                        (r.error.as_ref().map(|e| e.detail.clone()).unwrap_or_default())
                        @if r.invitation == Some("deferred") {
                            (tr(lang, "Invitation deferred (hourly budget spent): re-send it later", "邀请已延后（每小时额度已用完）：请稍后重发"))
                        }
                    }
                } } }
            }
            (import_form(lang, &token))
        },
        Err(e) => html! {
            h1 { (tr(lang, "Import members", "批量导入成员")) }
            p.error role="alert" { (failure(lang, &e)) }
            (import_form(lang, &token))
        },
    };
    (jar, Html(shell(lang, tr(lang, "Import", "批量导入"), None, body).into_string())).into_response()
}

async fn policy_page(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Query(n): Query<Notice>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = match s.services.get_policy(&caller).await {
        Ok(p) => p.policy,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    let f = PolicyFields::of(&p);
    let number = |id: &'static str, label: &'static str, min: u32, value: &str| {
        html! {
            label for=(id) { (label) }
            input id=(id) name=(id) type="number" min=(min) value=(value);
        }
    };
    let tick = |id: &'static str, label: &'static str, on: bool| {
        html! { label.check { input id=(id) type="checkbox" name=(id) value="true" checked[on]; " " (label) } }
    };
    let body = html! {
        h1 { (tr(lang, "Security policy", "安全策略")) }
        form id="policy" method="post" action="/admin/policy" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="was" value=(edits::shown(&f));
            (tick("require_password", tr(lang, "Require a password after the SMS code", "短信验证码后还需密码"), p.require_password))
            (tick("require_device_approval", tr(lang, "New devices wait for an admin's approval", "新设备需管理员批准"), p.require_device_approval))
            (tick("reverify_on_app_update", tr(lang, "Verify again after an app update", "应用更新后重新验证"), p.reverify_on_app_update))
            (number("reverify_after_days", tr(lang, "Verify devices again after (days)", "设备重新验证周期（天）"), 1, &f.reverify_after_days))
            (number("idle_timeout_days", tr(lang, "Idle timeout (days)", "闲置超时（天）"), 1, &f.idle_timeout_days))
            (number("max_devices", tr(lang, "Devices per member", "每人设备数上限"), 1, &f.max_devices))
            (number("access_token_ttl_seconds", tr(lang, "Access token lifetime (seconds)", "访问令牌有效期（秒）"), 60, &f.access_token_ttl_seconds))
            label for="allowed_regions" { (tr(lang, "Allowed regions (comma-separated, empty for all)", "允许的地区（逗号分隔，留空表示全部）")) }
            input id="allowed_regions" name="allowed_regions" value=(f.allowed_regions);
            button type="submit" { (tr(lang, "Save policy", "保存策略")) }
        }
    };
    (jar, Html(shell(lang, tr(lang, "Policy", "安全策略"), n.notice.as_deref(), body).into_string())).into_response()
}

async fn save_policy(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let edit = match Edit::<PolicyFields>::parse(&body) {
        Ok(edit) => edit,
        Err(e) => return (jar, back("/admin/policy", &failure(lang, &e))).into_response(),
    };
    if !csrf_ok(&s, &jar, &edit.csrf) {
        return (jar, back("/admin/policy", lang.error("csrf"))).into_response();
    }
    // The fields the admin changed apply to the policy as stored now.
    let policy = match s.services.get_policy(&caller).await {
        Ok(current) => edits::policy_update(&edit, &current.policy),
        Err(e) => Err(e),
    };
    let saved = match policy {
        Ok(policy) => s.services.put_policy(&caller, policy).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => (jar, back("/admin/policy", tr(lang, "Policy saved.", "策略已保存。"))).into_response(),
        Err(e) => (jar, back("/admin/policy", &failure(lang, &e))).into_response(),
    }
}

#[derive(Deserialize, Default)]
struct AuditFilterForm {
    action: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
}

async fn audit(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Query(q): Query<AuditFilterForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let query = AuditQuery {
        action: q.action.clone().filter(|a| !a.is_empty()),
        actor: q.actor.clone().filter(|a| !a.is_empty()),
        cursor: q.cursor.clone(),
        ..Default::default()
    };
    let (entries, error) = match s.services.list_audit(&caller, query).await {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(failure(lang, &e))),
    };
    let body = html! {
        h1 { (tr(lang, "Audit log", "操作日志")) }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.filters method="get" action="/admin/audit" {
            label for="action" { (tr(lang, "Action (e.g. member or member.disable)", "操作（如 member 或 member.disable）")) }
            input id="action" name="action" value=(q.action.clone().unwrap_or_default());
            label for="actor" { (tr(lang, "Actor (e.g. member:mem_… or api_key:key_…)", "操作者（如 member:mem_…）")) }
            input id="actor" name="actor" value=(q.actor.clone().unwrap_or_default());
            button type="submit" { (tr(lang, "Filter", "筛选")) }
        }
        table.audit {
            thead { tr { th { (tr(lang, "When", "时间")) } th { (tr(lang, "Who", "操作者")) } th { (tr(lang, "Action", "操作")) } th { (tr(lang, "Target", "对象")) } th { "IP" } } }
            tbody { @for e in entries.as_ref().map(|p| p.items.as_slice()).unwrap_or(&[]) { tr {
                td { (e.at.to_rfc3339()) } td { (e.actor) } td.action { (e.action) } td { (e.target.clone().unwrap_or_default()) } td { (e.ip.clone().unwrap_or_default()) }
            } } }
        }
        @if let Some(c) = entries.as_ref().and_then(|p| p.next_cursor.clone()) {
            p { a href={ "/admin/audit?cursor=" (c) "&action=" (q.action.clone().unwrap_or_default()) "&actor=" (q.actor.clone().unwrap_or_default()) } { (tr(lang, "Older", "更早")) " →" } }
        }
    };
    (jar, Html(shell(lang, tr(lang, "Audit log", "操作日志"), None, body).into_string())).into_response()
}

async fn keys(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Query(n): Query<Notice>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list = match s.services.list_api_keys(&caller).await {
        Ok(l) => l,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    let body = keys_body(lang, &token, &list, None);
    (jar, Html(shell(lang, tr(lang, "API keys", "API 密钥"), n.notice.as_deref(), body).into_string())).into_response()
}

fn keys_body(lang: Lang, token: &str, list: &[workgate_domain::model::ApiKey], created: Option<&str>) -> Markup {
    html! {
        h1 { (tr(lang, "API keys", "API 密钥")) }
        @if let Some(k) = created {
            p.notice role="status" { (tr(lang, "Copy the new key now; it is not shown again:", "请立即复制新密钥，之后将不再显示：")) br; code id="new-key" { (k) } }
        }
        table { thead { tr { th { (tr(lang, "Name", "名称")) } th { (tr(lang, "Starts with", "前缀")) } th { (tr(lang, "Created", "创建时间")) } th {} } }
            tbody { @for k in list { tr {
                td { (k.name) } td { code { (k.prefix) "…" } } td { (k.created_at.to_rfc3339()) }
                td { form.inline method="post" action={ "/admin/keys/" (k.id) "/delete" } {
                    input type="hidden" name="csrf" value=(token);
                    button.secondary type="submit" { (tr(lang, "Delete", "删除")) }
                } }
            } } }
        }
        form method="post" action="/admin/keys" {
            input type="hidden" name="csrf" value=(token);
            label for="key-name" { (tr(lang, "New key's name", "新密钥名称")) }
            input id="key-name" name="name" required;
            button type="submit" { (tr(lang, "Create key", "创建密钥")) }
        }
    }
}

#[derive(Deserialize)]
struct KeyForm {
    csrf: String,
    name: String,
}

async fn create_key(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Form(f): Form<KeyForm>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back("/admin/keys", lang.error("csrf"))).into_response();
    }
    match s.services.create_api_key(&caller, CreateApiKey { name: f.name }).await {
        Ok(created) => {
            // Shown in this answer only; a reload does not show it again.
            let list = s.services.list_api_keys(&caller).await.unwrap_or_default();
            let body = keys_body(lang, &token, &list, Some(created.secret.expose()));
            (jar, Html(shell(lang, tr(lang, "API keys", "API 密钥"), None, body).into_string())).into_response()
        }
        Err(e) => (jar, back("/admin/keys", &failure(lang, &e))).into_response(),
    }
}

async fn delete_key(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back("/admin/keys", lang.error("csrf"))).into_response();
    }
    match s.services.delete_api_key(&caller, &id).await {
        Ok(()) => {
            (jar, back("/admin/keys", tr(lang, "Key deleted; it stops working at once.", "密钥已删除，立即失效。")))
                .into_response()
        }
        Err(e) => (jar, back("/admin/keys", &failure(lang, &e))).into_response(),
    }
}

async fn department(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let d = match s.services.get_department(&caller, &id).await {
        Ok(d) => d,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    let departments = s.services.list_departments(&caller).await.unwrap_or_default();
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
        p { a href={ "/admin/members?department=" (d.id) } { (tr(lang, "Members of this department", "本部门成员")) } }
        form id="edit-department" method="post" action={ "/admin/departments/" (d.id) } {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="was" value=(edits::shown(&fields));
            label for="name" { (tr(lang, "Name", "名称")) }
            input id="name" name="name" value=(fields.name) required;
            @if parent_shown.is_some() {
                label for="parent_id" { (tr(lang, "Under", "上级部门")) }
                select id="parent_id" name="parent_id" { (department_options(lang, &tree, Some(fields.parent_id.as_str()), false)) }
            }
            label for="order" { (tr(lang, "Position among siblings", "同级排序")) }
            input id="order" name="order" type="number" value=(fields.order);
            button type="submit" { (tr(lang, "Save", "保存")) }
        }
        @if d.parent_id.is_some() {
            form method="post" action={ "/admin/departments/" (d.id) "/delete" } {
                input type="hidden" name="csrf" value=(token);
                p.muted { (tr(lang, "Only an empty department (no sub-departments, no members) can be deleted.", "只能删除没有下级部门和成员的部门。")) }
                button.secondary type="submit" { (tr(lang, "Delete department", "删除部门")) }
            }
        }
    };
    (jar, Html(shell(lang, d.name.as_str(), n.notice.as_deref(), body).into_string())).into_response()
}

async fn edit_department(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/departments/{id}");
    let edit = match Edit::<DepartmentFields>::parse(&body) {
        Ok(edit) => edit,
        Err(e) => return (jar, back(&here, &failure(lang, &e))).into_response(),
    };
    if !csrf_ok(&s, &jar, &edit.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    let patch = match edits::department_patch(&edit) {
        Ok(Some(patch)) => patch,
        Ok(None) => return (jar, back(&here, tr(lang, "Nothing changed.", "没有修改。"))).into_response(),
        Err(e) => return (jar, back(&here, &failure(lang, &e))).into_response(),
    };
    match s.services.update_department(&caller, &id, patch).await {
        Ok(_) => (jar, back(&here, tr(lang, "Saved.", "已保存。"))).into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

async fn delete_department(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/departments/{id}");
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    match s.services.delete_department(&caller, &id).await {
        Ok(()) => (jar, back("/admin/members", tr(lang, "Department deleted.", "部门已删除。"))).into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

/// The apps page: the enterprise's OpenID Connect clients, a form to register one, and a
/// freshly made secret shown once.
fn apps_body(lang: Lang, token: &str, list: &[App], created: Option<(&App, &str)>) -> Markup {
    html! {
        h1 { (tr(lang, "Apps", "应用")) }
        p.muted { (tr(lang, "Company apps sign members in with OpenID Connect. The issuer is this server's address.",
            "企业应用通过 OpenID Connect 让成员登录，签发者即本服务器地址。")) }
        @if let Some((app, secret)) = created {
            p.notice role="status" {
                (tr(lang, "Copy the client secret of ", "请立即复制以下应用的客户端密钥："))
                strong { (app.name) }
                (tr(lang, " now; it is not shown again:", "，之后将不再显示：")) br;
                "client_id " code { (app.id) } br;
                "client_secret " code id="new-secret" { (secret) }
            }
        }
        table.apps {
            thead { tr {
                th { (tr(lang, "Name", "名称")) } th { "client_id" } th { (tr(lang, "Type", "类型")) }
                th { (tr(lang, "Redirect URIs", "回调地址")) } th {}
            } }
            tbody { @for a in list { tr {
                td { a href={ "/admin/apps/" (a.id) } { (a.name) } } td { code { (a.id) } } td { (a.client_type.as_str()) }
                td { @for u in &a.redirect_uris { code { (u) } br; } }
                td {
                    @if a.client_type == ClientType::Confidential {
                        form.inline method="post" action={ "/admin/apps/" (a.id) "/secret" } {
                            input type="hidden" name="csrf" value=(token);
                            button.secondary type="submit" { (tr(lang, "New secret", "重置密钥")) }
                        }
                    }
                    form.inline method="post" action={ "/admin/apps/" (a.id) "/delete" } {
                        input type="hidden" name="csrf" value=(token);
                        button.secondary type="submit" { (tr(lang, "Delete", "删除")) }
                    }
                }
            } } }
        }
        h2 { (tr(lang, "Register an app", "注册应用")) }
        form method="post" action="/admin/apps" {
            input type="hidden" name="csrf" value=(token);
            label for="app-name" { (tr(lang, "Name", "名称")) }
            input id="app-name" name="name" required maxlength="64";
            label for="app-type" { (tr(lang, "Type", "类型")) }
            select id="app-type" name="client_type" {
                option value="confidential" selected { (tr(lang, "Server-side app (has a secret)", "服务端应用（有密钥）")) }
                option value="public" { (tr(lang, "Browser or mobile app (no secret)", "浏览器或移动应用（无密钥）")) }
            }
            label for="app-redirects" { (tr(lang, "Redirect URIs, one per line", "回调地址，每行一个")) }
            textarea id="app-redirects" name="redirect_uris" rows="3" required {}
            label for="app-logout" { (tr(lang, "After-logout URIs, one per line (optional)", "退出后跳转地址，每行一个（可选）")) }
            textarea id="app-logout" name="post_logout_redirect_uris" rows="2" {}
            (scope_ticks(lang, "app-", &SCOPES.map(str::to_string)))
            button type="submit" { (tr(lang, "Register", "注册")) }
        }
    }
}

async fn apps(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Query(n): Query<Notice>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let list = match s.services.list_apps(&caller).await {
        Ok(l) => l,
        Err(e) => return (jar, back("/admin/members", &failure(lang, &e))).into_response(),
    };
    let body = apps_body(lang, &token, &list, None);
    (jar, Html(shell(lang, tr(lang, "Apps", "应用"), n.notice.as_deref(), body).into_string())).into_response()
}

#[derive(Deserialize)]
struct AppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    client_type: String,
    #[serde(default)]
    redirect_uris: String,
    post_logout_redirect_uris: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// The scopes an app may ask for, as ticks.
fn scope_ticks(lang: Lang, prefix: &str, ticked: &[String]) -> Markup {
    html! {
        fieldset {
            legend { (tr(lang, "Scopes the app may ask for", "应用可申请的权限范围")) }
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

/// One app's page: its settings, changed by a form that saves only what was changed.
async fn app_page(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let app = match s.services.get_app(&caller, &id).await {
        Ok(app) => app,
        Err(e) => return (jar, back("/admin/apps", &failure(lang, &e))).into_response(),
    };
    let fields = AppFields {
        name: app.name.clone(),
        redirect_uris: app.redirect_uris.join("\n"),
        post_logout_redirect_uris: app.post_logout_redirect_uris.join("\n"),
        scopes: app.scopes.clone(),
    };
    let body = html! {
        h1 { (app.name) }
        p { "client_id " code { (app.id) } " · " (app.client_type.as_str()) }
        form id="edit-app" method="post" action={ "/admin/apps/" (app.id) } {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="was" value=(edits::shown(&fields));
            label for="name" { (tr(lang, "Name", "名称")) }
            input id="name" name="name" value=(fields.name) required maxlength="64";
            label for="redirect_uris" { (tr(lang, "Redirect URIs, one per line", "回调地址，每行一个")) }
            textarea id="redirect_uris" name="redirect_uris" rows="3" required { (fields.redirect_uris) }
            label for="post_logout_redirect_uris" { (tr(lang, "After-logout URIs, one per line (optional)", "退出后跳转地址，每行一个（可选）")) }
            textarea id="post_logout_redirect_uris" name="post_logout_redirect_uris" rows="2" { (fields.post_logout_redirect_uris) }
            (scope_ticks(lang, "", &fields.scopes))
            button type="submit" { (tr(lang, "Save", "保存")) }
        }
        p { a href="/admin/apps" { "← " (tr(lang, "All apps", "全部应用")) } }
    };
    (jar, Html(shell(lang, &app.name, n.notice.as_deref(), body).into_string())).into_response()
}

async fn edit_app(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let here = format!("/admin/apps/{id}");
    let edit = match Edit::<AppFields>::parse(&body) {
        Ok(edit) => edit,
        Err(e) => return (jar, back(&here, &failure(lang, &e))).into_response(),
    };
    if !csrf_ok(&s, &jar, &edit.csrf) {
        return (jar, back(&here, lang.error("csrf"))).into_response();
    }
    let update = edits::app_update(&edit);
    if update.name.is_none()
        && update.redirect_uris.is_none()
        && update.post_logout_redirect_uris.is_none()
        && update.scopes.is_none()
    {
        return (jar, back(&here, tr(lang, "Nothing changed.", "没有修改。"))).into_response();
    }
    match s.services.update_app(&caller, &id, update).await {
        Ok(_) => (jar, back(&here, tr(lang, "Saved.", "已保存。"))).into_response(),
        Err(e) => (jar, back(&here, &failure(lang, &e))).into_response(),
    }
}

async fn create_app(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    RawForm(body): RawForm,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let f: AppForm = match edits::form(&body) {
        Ok(f) => f,
        Err(e) => return (jar, back("/admin/apps", &failure(lang, &e))).into_response(),
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back("/admin/apps", lang.error("csrf"))).into_response();
    }
    let input = CreateApp {
        name: f.name,
        client_type: Some(f.client_type),
        redirect_uris: edits::lines(&f.redirect_uris),
        post_logout_redirect_uris: edits::lines(f.post_logout_redirect_uris.as_deref().unwrap_or_default()),
        scopes: Some(f.scopes),
    };
    match s.services.create_app(&caller, input).await {
        Ok(created) => {
            let list = s.services.list_apps(&caller).await.unwrap_or_default();
            let secret = created.secret.as_ref().map(|s| s.expose().to_string());
            let shown = secret.as_deref().map(|secret| (&created.app, secret));
            let notice = secret.is_none().then(|| tr(lang, "App registered.", "应用已注册。"));
            let body = apps_body(lang, &token, &list, shown);
            (jar, Html(shell(lang, tr(lang, "Apps", "应用"), notice, body).into_string())).into_response()
        }
        Err(e) => (jar, back("/admin/apps", &failure(lang, &e))).into_response(),
    }
}

async fn rotate_app_secret(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (jar, caller, token) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back("/admin/apps", lang.error("csrf"))).into_response();
    }
    match s.services.rotate_app_secret(&caller, &id).await {
        Ok(rotated) => {
            let list = s.services.list_apps(&caller).await.unwrap_or_default();
            let secret = rotated.secret.as_ref().map(|s| s.expose().to_string()).unwrap_or_default();
            let body = apps_body(lang, &token, &list, Some((&rotated.app, &secret)));
            (jar, Html(shell(lang, tr(lang, "Apps", "应用"), None, body).into_string())).into_response()
        }
        Err(e) => (jar, back("/admin/apps", &failure(lang, &e))).into_response(),
    }
}

async fn delete_app(
    State(s): State<AppState>,
    Client(client): Client,
    lang: Lang,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (jar, caller, _) = match admin(&s, jar, client).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &jar, &f.csrf) {
        return (jar, back("/admin/apps", lang.error("csrf"))).into_response();
    }
    match s.services.delete_app(&caller, &id).await {
        Ok(()) => (
            jar,
            back(
                "/admin/apps",
                tr(lang, "App deleted; its tokens stop working at once.", "应用已删除，其令牌立即失效。"),
            ),
        )
            .into_response(),
        Err(e) => (jar, back("/admin/apps", &failure(lang, &e))).into_response(),
    }
}

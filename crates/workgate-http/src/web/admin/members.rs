//! The members page (the directory: search, filters, paging, add) and a member's page (edit,
//! status, invitations, devices, sessions).

use super::edits::MemberFields;
use super::*;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use workgate_domain::directory::{ListMembersQuery, NewMemberInput, StatusChange};
use workgate_domain::sessions::DeviceState;
use workgate_domain::values::Role;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/members", get(members).post(add_member))
        .route("/admin/members/{id}", get(member).post(edit_member))
        .route("/admin/members/{id}/status", get(confirm_status).post(change_status))
        .route("/admin/members/{id}/invitation", post(resend_invitation))
        .route("/admin/members/{id}/devices/{device}/{action}", post(device_action))
}

async fn members(State(s): State<AppState>, console: Console, Query(q): Query<MembersQuery>) -> Response {
    let lang = console.lang;
    let mut problems = Problems::default();
    let departments = problems.keep(lang, s.services.list_departments(&console.caller).await);
    let tree = tree_order(&departments);
    let query = ListMembersQuery {
        department: q.department.clone().filter(|d| !d.is_empty()),
        status: q.status.clone().filter(|d| !d.is_empty()),
        q: q.q.clone(),
        cursor: q.cursor.clone(),
        limit: Some(50),
    };
    let (page, error) = match s.services.list_members(&console.caller, query).await {
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
    let shown = q.department.as_deref().filter(|d| !d.is_empty());
    let shown_name = shown.and_then(|id| departments.iter().find(|d| d.id.as_str() == id)).map(|d| d.name.to_string());
    let body = html! {
        h1 { (lang.pick("Members", "成员")) }
        div.directory {
        // The tree beside the list, as directory consoles have it: a department lists its members
        // and those of its sub-departments.
        nav.departments aria-label=(lang.pick("Departments", "部门")) {
            ul.tree {
                li { a href="/admin/members" aria-current=[shown.is_none().then_some("page")] { (lang.pick("Everyone", "全部成员")) } }
                @for (depth, d) in &tree {
                    li data-depth=(depth) {
                        a href={ "/admin/members?department=" (d.id) }
                            aria-current=[(shown == Some(d.id.as_str())).then_some("page")] { (d.name) }
                        " " a.edit href={ "/admin/departments/" (d.id) } title=(lang.pick("Edit the department", "编辑部门")) { "✎" }
                    }
                }
            }
        }
        section.listing {
        @if let Some(name) = &shown_name { h2 { (name) " " span.muted { (lang.pick("with sub-departments", "含下级部门")) } } }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.filters method="get" action="/admin/members" {
            label for="q" { (lang.pick("Search name, userid or number", "搜索姓名、账号或手机号")) }
            input id="q" name="q" type="search" value=(q.q.clone().unwrap_or_default());
            label for="status" { (lang.pick("Status", "状态")) }
            select id="status" name="status" {
                option value="" { (lang.pick("All but departed", "除已离职外全部")) }
                @for st in ["invited", "active", "disabled", "departed"] {
                    option value=(st) selected[q.status.as_deref() == Some(st)] { (st) }
                }
            }
            label for="department" { (lang.pick("Department (with sub-departments)", "部门（含下级）")) }
            select id="department" name="department" { (department_options(lang, &tree, q.department.as_deref(), true)) }
            button type="submit" { (lang.pick("Filter", "筛选")) }
        }
        table.members {
            thead { tr {
                th { (lang.pick("Name", "姓名")) } th { "userid" } th { (lang.pick("Number", "手机号")) }
                th { (lang.pick("Departments", "部门")) } th { (lang.pick("Role", "角色")) } th { (lang.pick("Status", "状态")) }
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
        @if let Some(link) = next_link { p { a href=(link) { (lang.pick("Next page", "下一页")) " →" } } }
        }
        }
        h2 { (lang.pick("Add a member", "添加成员")) }
        form id="add-member" method="post" action="/admin/members" {
            input type="hidden" name="csrf" value=(console.token);
            (member_fields(lang, "new-", &tree, &new_member, &role_choices(&console.caller, Role::Member), 0))
            button type="submit" { (lang.pick("Add and send the invitation", "添加并发送邀请")) }
        }
        h2 { (lang.pick("Add a department", "添加部门")) }
        form method="post" action="/admin/departments" {
            input type="hidden" name="csrf" value=(console.token);
            label for="dep-name" { (lang.pick("New department", "新部门")) }
            input id="dep-name" name="name" required;
            label for="dep-parent" { (lang.pick("Under", "上级部门")) }
            select id="dep-parent" name="parent_id" { (department_options(lang, &tree, None, false)) }
            button.secondary type="submit" { (lang.pick("Add department", "添加部门")) }
        }
    };
    console.page(lang.pick("Members", "成员"), q.notice.as_deref(), html! { (problems.markup()) (body) })
}

async fn add_member(State(s): State<AppState>, ConsoleForm(console, f): ConsoleForm<MemberFields>) -> Response {
    let lang = console.lang;
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
    match s.services.add_member(&console.caller, input).await {
        Ok(m) => console.back(
            &format!("/admin/members/{}", m.id),
            lang.pick("Member added; the invitation is on its way.", "已添加成员，邀请短信正在发送。"),
        ),
        Err(e) => console.refused("/admin/members", &e),
    }
}

async fn member(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(n): Query<Notice>,
) -> Answer {
    let lang = console.lang;
    let mut problems = Problems::default();
    let m = console.read("/admin/members", s.services.get_member(&console.caller, &id).await)?;
    let invitations = problems.keep(lang, s.services.list_invitations(&console.caller, &id).await);
    let devices = problems.keep(lang, s.services.member_devices(&console.caller, &id).await);
    let sessions = problems.keep(lang, s.services.member_sessions(&console.caller, &id).await);
    let departments = problems.keep(lang, s.services.list_departments(&console.caller).await);
    let tree = tree_order(&departments);
    let roles = role_choices(&console.caller, m.role);
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
            input type="hidden" name="csrf" value=(console.token);
            input type="hidden" name="was" value=(edits::shown(&fields));
            (member_fields(lang, "", &tree, &fields, &roles, outside))
            button type="submit" { (lang.pick("Save", "保存")) }
        }
        h2 { (lang.pick("Status", "状态")) }
        p {
            @for (action, en, zh) in [("disable", "Disable", "停用"), ("enable", "Enable", "启用"), ("depart", "Mark as departed", "办理离职")] {
                a.button.secondary href={ "/admin/members/" (m.id) "/status?action=" (action) } { (lang.pick(en, zh)) } " "
            }
        }
        h2 { (lang.pick("Invitations", "邀请")) }
        table {
            thead { tr { th { (lang.pick("Sent", "发送时间")) } th { (lang.pick("State", "状态")) } th { (lang.pick("SMS delivery", "短信送达")) } } }
            tbody { @for i in &invitations { tr {
                td { (i.created_at.to_rfc3339()) } td { (i.state.as_str()) }
                td.delivery { (i.delivery.as_ref().map(|d| d.state.clone()).unwrap_or_default()) }
            } } }
        }
        form method="post" action={ "/admin/members/" (m.id) "/invitation" } {
            input type="hidden" name="csrf" value=(console.token);
            button.secondary type="submit" { (lang.pick("Send the invitation again", "重新发送邀请")) }
        }
        h2 { (lang.pick("Devices", "设备")) }
        table {
            thead { tr { th { (lang.pick("Device", "设备")) } th { (lang.pick("State", "状态")) } th { (lang.pick("Last seen", "最近使用")) } th {} } }
            tbody { @for d in &devices { tr {
                td { (d.name.clone().or(d.platform.clone()).unwrap_or_else(|| d.id.to_string())) }
                td { (d.state.as_str()) } td { (d.last_seen_at.to_rfc3339()) }
                td {
                    @if d.state == DeviceState::Pending {
                        form.inline method="post" action={ "/admin/members/" (m.id) "/devices/" (d.id) "/approve" } {
                            input type="hidden" name="csrf" value=(console.token);
                            button type="submit" { (lang.pick("Approve", "批准")) }
                        }
                    }
                    @if d.state != DeviceState::Revoked {
                        form.inline method="post" action={ "/admin/members/" (m.id) "/devices/" (d.id) "/revoke" } {
                            input type="hidden" name="csrf" value=(console.token);
                            button.secondary type="submit" { (lang.pick("Sign out", "移除")) }
                        }
                    }
                }
            } } }
        }
        h2 { (lang.pick("Sessions", "会话")) }
        table.sessions {
            thead { tr {
                th { (lang.pick("Signed in on", "登录于")) } th { (lang.pick("Since", "开始时间")) }
                th { (lang.pick("Last used", "最近使用")) } th { (lang.pick("State", "状态")) }
            } }
            tbody { @for x in &sessions { tr {
                td {
                    @if x.kind == "app" { (lang.pick("App: ", "应用：")) }
                    (x.holder_name.clone().unwrap_or_else(|| x.holder_id.clone()))
                }
                td { (x.created_at.to_rfc3339()) } td { (x.last_used_at.to_rfc3339()) }
                td { @match (&x.ended_at, &x.ended_reason) {
                    (None, _) => (lang.pick("active", "有效")),
                    (Some(_), reason) => { (lang.pick("ended", "已结束")) @if let Some(r) = reason { " (" (r.as_str()) ")" } }
                } }
            } } }
        }
    };
    Ok(console.page(m.name.as_str(), n.notice.as_deref(), html! { (problems.markup()) (body) }))
}

async fn edit_member(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleEdit(console, edit): ConsoleEdit<MemberFields>,
) -> Answer {
    let lang = console.lang;
    let here = format!("/admin/members/{id}");
    // The change applies to the member as stored now, not as the page showed it.
    let current = console.read("/admin/members", s.services.get_member(&console.caller, &id).await)?;
    let strings = |ids: &[workgate_domain::ids::DepartmentId]| ids.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let patch = edits::member_patch(&edit, &strings(&current.departments), &strings(&current.admin_departments));
    if patch.is_empty() {
        return Ok(console.back(&here, lang.pick("Nothing changed.", "没有修改。")));
    }
    Ok(console.answer(
        &here,
        s.services.update_member(&console.caller, &id, patch).await,
        lang.pick("Saved.", "已保存。"),
    ))
}

/// The status changes of a member's page, named as in their paths and forms.
fn status_change(action: &str) -> Option<StatusChange> {
    match action {
        "disable" => Some(StatusChange::Disable),
        "enable" => Some(StatusChange::Enable),
        "depart" => Some(StatusChange::Depart),
        _ => None,
    }
}

fn action_name(change: StatusChange) -> &'static str {
    match change {
        StatusChange::Disable => "disable",
        StatusChange::Enable => "enable",
        StatusChange::Depart => "depart",
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    action: String,
}

/// The confirmation step before a status change.
async fn confirm_status(
    State(s): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Answer {
    let lang = console.lang;
    let here = format!("/admin/members/{id}");
    let m = console.read("/admin/members", s.services.get_member(&console.caller, &id).await)?;
    // An unknown action is refused, never taken for one of the known ones.
    let Some(change) = status_change(&q.action) else {
        return Ok(console.back(&here, lang.error("validation_failed")));
    };
    let question = match change {
        StatusChange::Disable => lang.pick(
            "Disable this member? Every session and device of theirs ends at once.",
            "确定停用该成员？其所有会话和设备将立即失效。",
        ),
        StatusChange::Enable => lang.pick("Enable this member again?", "确定重新启用该成员？"),
        StatusChange::Depart => lang.pick(
            "Mark this member as departed? Their access ends everywhere and the record is kept for the audit trail; \
             this cannot be undone.",
            "确定办理离职？其所有访问将立即终止，记录保留用于审计，且不可撤销。",
        ),
    };
    let body = html! {
        h1 { (m.name) }
        p { (question) }
        form method="post" action={ "/admin/members/" (m.id) "/status" } {
            input type="hidden" name="csrf" value=(console.token);
            input type="hidden" name="action" value=(action_name(change));
            button id="confirm" type="submit" { (lang.pick("Yes, continue", "确认")) }
        }
        p { a href=(here) { (lang.pick("Cancel", "取消")) } }
    };
    Ok(console.page(m.name.as_str(), None, body))
}

#[derive(Deserialize)]
struct StatusForm {
    action: String,
}

async fn change_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleForm(console, f): ConsoleForm<StatusForm>,
) -> Response {
    let lang = console.lang;
    let here = format!("/admin/members/{id}");
    let Some(change) = status_change(&f.action) else {
        return console.back(&here, lang.error("validation_failed"));
    };
    match s.services.change_member_status(&console.caller, &id, change).await {
        Ok(m) => console.back(&here, &format!("{} {}", lang.pick("Status is now", "当前状态："), m.status.as_str())),
        Err(e) => console.refused(&here, &e),
    }
}

async fn resend_invitation(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ConsoleForm(console, Button {}): ConsoleForm<Button>,
) -> Response {
    let done = console
        .lang
        .pick("A new invitation is on its way; the old link no longer works.", "新的邀请已发送，旧链接已失效。");
    console.answer(&format!("/admin/members/{id}"), s.services.resend_invitation(&console.caller, &id).await, done)
}

/// What a member's page does to one of their devices.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum DeviceAction {
    Approve,
    Revoke,
}

async fn device_action(
    State(s): State<AppState>,
    Path((id, device, action)): Path<(String, String, DeviceAction)>,
    ConsoleForm(console, Button {}): ConsoleForm<Button>,
) -> Response {
    let result = match action {
        DeviceAction::Approve => s.services.approve_member_device(&console.caller, &id, &device).await,
        DeviceAction::Revoke => s.services.revoke_member_device(&console.caller, &id, &device).await,
    };
    console.answer(&format!("/admin/members/{id}"), result, console.lang.pick("Done.", "已完成。"))
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
        Role::Owner => lang.pick("Owner", "所有者"),
        Role::Admin => lang.pick("Admin", "管理员"),
        Role::DepartmentAdmin => lang.pick("Department admin", "部门管理员"),
        Role::Member => lang.pick("Member", "成员"),
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
    let optional = html! { " " span.muted { (lang.pick("(optional)", "（可选）")) } };
    html! {
        label for={ (prefix) "name" } { (lang.pick("Name", "姓名")) }
        input id={ (prefix) "name" } name="name" value=(fields.name) required;
        label for={ (prefix) "phone" } { (lang.pick("Mobile number", "手机号")) }
        input id={ (prefix) "phone" } name="phone" type="tel" value=(fields.phone) required;
        label for={ (prefix) "userid" } { "userid" @if prefix == "new-" { (optional) } }
        input id={ (prefix) "userid" } name="userid" value=(fields.userid);
        label for={ (prefix) "email" } { (lang.pick("E-mail", "邮箱")) (optional) }
        input id={ (prefix) "email" } name="email" type="email" value=(fields.email);
        label for={ (prefix) "title" } { (lang.pick("Title", "职务")) (optional) }
        input id={ (prefix) "title" } name="title" value=(fields.title);
        fieldset {
            legend { (lang.pick("Departments", "所属部门")) }
            (department_ticks("departments", prefix, tree, &fields.departments))
            @if outside > 0 {
                p.muted { (lang.pick("Also in departments outside the ones you administer: ", "另属于您管理范围之外的部门：")) (outside) (lang.pick("; saving keeps them.", "个，保存时保留。")) }
            }
        }
        @if !roles.is_empty() {
            label for={ (prefix) "role" } { (lang.pick("Role", "角色")) }
            select id={ (prefix) "role" } name="role" {
                @for r in roles { option value=(r.as_str()) selected[fields.role == r.as_str()] { (role_name(lang, *r)) } }
            }
            fieldset {
                legend { (lang.pick("Departments they administer (department admins only)", "管理的部门（仅部门管理员）")) }
                (department_ticks("admin_departments", prefix, tree, &fields.admin_departments))
            }
        }
    }
}

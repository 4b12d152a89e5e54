//! The enterprise's security policy.

use super::edits::PolicyFields;
use super::*;
use axum::extract::{Query, State};
use axum::routing::get;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/policy", get(policy_page).post(save_policy))
}

async fn policy_page(State(s): State<AppState>, console: Console, Query(n): Query<Notice>) -> Answer {
    let lang = console.lang;
    let p = console.read("/admin/members", s.services.get_policy(&console.caller).await)?.policy;
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
        h1 { (lang.pick("Security policy", "安全策略")) }
        form id="policy" method="post" action="/admin/policy" {
            input type="hidden" name="csrf" value=(console.token);
            input type="hidden" name="was" value=(edits::shown(&f));
            (tick("require_password", lang.pick("Require a password after the SMS code", "短信验证码后还需密码"), p.require_password))
            (tick("require_device_approval", lang.pick("New devices wait for an admin's approval", "新设备需管理员批准"), p.require_device_approval))
            (tick("reverify_on_app_update", lang.pick("Verify again after an app update", "应用更新后重新验证"), p.reverify_on_app_update))
            (number("reverify_after_days", lang.pick("Verify devices again after (days)", "设备重新验证周期（天）"), 1, &f.reverify_after_days))
            (number("idle_timeout_days", lang.pick("Idle timeout (days)", "闲置超时（天）"), 1, &f.idle_timeout_days))
            (number("max_devices", lang.pick("Devices per member", "每人设备数上限"), 1, &f.max_devices))
            (number("access_token_ttl_seconds", lang.pick("Access console.token lifetime (seconds)", "访问令牌有效期（秒）"), 60, &f.access_token_ttl_seconds))
            label for="allowed_regions" { (lang.pick("Allowed regions (comma-separated, empty for all)", "允许的地区（逗号分隔，留空表示全部）")) }
            input id="allowed_regions" name="allowed_regions" value=(f.allowed_regions);
            button type="submit" { (lang.pick("Save policy", "保存策略")) }
        }
    };
    Ok(console.page(lang.pick("Policy", "安全策略"), n.notice.as_deref(), body))
}

async fn save_policy(State(s): State<AppState>, ConsoleEdit(console, edit): ConsoleEdit<PolicyFields>) -> Response {
    let lang = console.lang;
    // The fields the admin changed apply to the policy as stored at the moment it is written.
    let saved = s.services.change_policy(&console.caller, |current| edits::policy_update(&edit, &current.policy)).await;
    match saved {
        Ok(_) => console.back("/admin/policy", lang.pick("Policy saved.", "策略已保存。")),
        Err(e) => console.refused("/admin/policy", &e),
    }
}

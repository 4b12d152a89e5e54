//! What a console edit form saves: only what the admin changed.
//!
//! Every edit form carries, beside the fields the admin may change, a hidden `was` field: the same
//! fields as the page showed them. On save, a field whose submitted value equals the shown one is
//! left out of the change, so a save never overwrites what the form did not show, nor what someone
//! else changed after the page was opened. List-valued fields (a member's departments, the
//! departments a department admin administers) are merged: the ticks the admin added and removed
//! are applied to the record's current list, and entries the form could not show (departments
//! outside a department admin's subtrees) stay as they are.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use workgate_domain::directory::{DepartmentPatch, MemberPatch};
use workgate_domain::oidc::apps::UpdateApp;
use workgate_domain::policy::Policy;
use workgate_domain::{Error, FieldError};

/// A submitted edit form: the values it showed and the values sent back. (Its CSRF token is
/// checked by the console's extractor before the form is read.)
pub struct Edit<T> {
    pub was: T,
    pub now: T,
}

#[derive(Deserialize)]
struct EditMeta {
    #[serde(default)]
    was: String,
}

impl<T: DeserializeOwned> Edit<T> {
    /// Reads an `application/x-www-form-urlencoded` body whose fields are `T`'s plus `was`.
    pub fn parse(body: &[u8]) -> Result<Edit<T>, Error> {
        let meta: EditMeta = form(body)?;
        let now = form(body)?;
        let was = form(meta.was.as_bytes())?;
        Ok(Edit { was, now })
    }
}

/// Reads a form body in which a field may repeat (the ticks of a list).
pub fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_html_form::from_bytes(body).map_err(malformed)
}

fn malformed(e: serde_html_form::de::Error) -> Error {
    Error::Validation(vec![FieldError::new("form", format!("could not be read: {e}"))])
}

/// The hidden `was` value of a form showing `shown`.
pub fn shown<T: Serialize>(shown: &T) -> String {
    serde_html_form::to_string(shown).unwrap_or_default()
}

/// The new value of a text field, when the admin changed it.
fn changed(was: &str, now: &str) -> Option<String> {
    (was.trim() != now.trim()).then(|| now.trim().to_string())
}

/// A text field that may be cleared: an emptied field becomes `null`.
fn changed_optional(was: &str, now: &str) -> Option<Option<String>> {
    changed(was, now).map(|v| (!v.is_empty()).then_some(v))
}

/// A ticked list: `None` when the ticks are as shown, otherwise `current` less what was unticked,
/// plus what was ticked (in the order shown).
fn merged(was: &[String], now: &[String], current: &[String]) -> Option<Vec<String>> {
    let same = was.iter().all(|w| now.contains(w)) && now.iter().all(|n| was.contains(n));
    if same {
        return None;
    }
    let mut out: Vec<String> = current.iter().filter(|c| !was.contains(c) || now.contains(c)).cloned().collect();
    for n in now {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Some(out)
}

/// The member form's fields. Fields the form does not offer to this admin stay empty in both
/// `was` and `now`, and so are never part of the change.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub userid: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub departments: Vec<String>,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub admin_departments: Vec<String>,
}

/// The change an edit of the member form makes to a member whose stored lists are
/// `current_departments` and `current_admin_departments`.
pub fn member_patch(
    edit: &Edit<MemberFields>,
    current_departments: &[String],
    current_admin_departments: &[String],
) -> MemberPatch {
    let (was, now) = (&edit.was, &edit.now);
    MemberPatch {
        name: changed(&was.name, &now.name),
        phone: changed(&was.phone, &now.phone),
        userid: changed(&was.userid, &now.userid),
        email: changed_optional(&was.email, &now.email),
        title: changed_optional(&was.title, &now.title),
        departments: merged(&was.departments, &now.departments, current_departments),
        role: changed(&was.role, &now.role),
        admin_departments: merged(&was.admin_departments, &now.admin_departments, current_admin_departments),
    }
}

/// The department form's fields; `parent_id` stays empty where the form shows no parent (the
/// root, or a parent outside a department admin's subtrees).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub parent_id: String,
    #[serde(default)]
    pub order: String,
}

/// The change an edit of the department form makes; `None` when nothing changed.
pub fn department_patch(edit: &Edit<DepartmentFields>) -> Result<Option<DepartmentPatch>, Error> {
    let (was, now) = (&edit.was, &edit.now);
    let order = match changed(&was.order, &now.order) {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| Error::Validation(vec![FieldError::new("order", "must be a whole number")]))?,
        ),
        None => None,
    };
    let patch = DepartmentPatch {
        name: changed(&was.name, &now.name),
        parent_id: changed(&was.parent_id, &now.parent_id).filter(|p| !p.is_empty()),
        order,
    };
    let empty = patch.name.is_none() && patch.parent_id.is_none() && patch.order.is_none();
    Ok((!empty).then_some(patch))
}

/// The app form's fields: the URI lists one per line, the scopes as ticks.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub redirect_uris: String,
    #[serde(default)]
    pub post_logout_redirect_uris: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub id_token_signed_response_alg: String,
}

/// Non-empty trimmed lines.
pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

pub fn app_update(edit: &Edit<AppFields>) -> UpdateApp {
    let (was, now) = (&edit.was, &edit.now);
    let list = |a: &str, b: &str| (lines(a) != lines(b)).then(|| lines(b));
    UpdateApp {
        name: changed(&was.name, &now.name),
        redirect_uris: list(&was.redirect_uris, &now.redirect_uris),
        post_logout_redirect_uris: list(&was.post_logout_redirect_uris, &now.post_logout_redirect_uris),
        // Scopes are a set: the app's current ones are exactly what the form shows.
        scopes: merged(&was.scopes, &now.scopes, &was.scopes),
        id_token_signed_response_alg: changed(&was.id_token_signed_response_alg, &now.id_token_signed_response_alg),
    }
}

/// The policy form's fields. Ticks are present (`"true"`) or absent; numbers stay text until a
/// changed one is read, so an untouched field is never re-parsed.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_device_approval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverify_on_app_update: Option<String>,
    #[serde(default)]
    pub reverify_after_days: String,
    #[serde(default)]
    pub idle_timeout_days: String,
    #[serde(default)]
    pub max_devices: String,
    #[serde(default)]
    pub access_token_ttl_seconds: String,
    #[serde(default)]
    pub allowed_regions: String,
}

impl PolicyFields {
    pub fn of(p: &Policy) -> PolicyFields {
        let tick = |b: bool| b.then(|| "true".to_string());
        PolicyFields {
            require_password: tick(p.require_password),
            require_device_approval: tick(p.require_device_approval),
            reverify_on_app_update: tick(p.reverify_on_app_update),
            reverify_after_days: p.reverify_after_days.to_string(),
            idle_timeout_days: p.idle_timeout_days.to_string(),
            max_devices: p.max_devices.to_string(),
            access_token_ttl_seconds: p.access_token_ttl_seconds.to_string(),
            allowed_regions: p.allowed_regions.clone().map(|r| r.join(", ")).unwrap_or_default(),
        }
    }
}

/// `current` with the fields the admin changed on the policy form.
pub fn policy_update(edit: &Edit<PolicyFields>, current: &Policy) -> Result<Policy, Error> {
    let (was, now) = (&edit.was, &edit.now);
    let mut p = current.clone();
    let mut errors = Vec::new();
    let tick = |a: &Option<String>, b: &Option<String>, value: &mut bool| {
        if a.is_some() != b.is_some() {
            *value = b.is_some();
        }
    };
    tick(&was.require_password, &now.require_password, &mut p.require_password);
    tick(&was.require_device_approval, &now.require_device_approval, &mut p.require_device_approval);
    tick(&was.reverify_on_app_update, &now.reverify_on_app_update, &mut p.reverify_on_app_update);
    let mut number = |field: &'static str, a: &str, b: &str, value: &mut u32| {
        if let Some(text) = changed(a, b) {
            match text.parse() {
                Ok(n) => *value = n,
                Err(_) => errors.push(FieldError::new(field, "must be a whole number")),
            }
        }
    };
    number("reverify_after_days", &was.reverify_after_days, &now.reverify_after_days, &mut p.reverify_after_days);
    number("idle_timeout_days", &was.idle_timeout_days, &now.idle_timeout_days, &mut p.idle_timeout_days);
    number("max_devices", &was.max_devices, &now.max_devices, &mut p.max_devices);
    number(
        "access_token_ttl_seconds",
        &was.access_token_ttl_seconds,
        &now.access_token_ttl_seconds,
        &mut p.access_token_ttl_seconds,
    );
    if let Some(text) = changed(&was.allowed_regions, &now.allowed_regions) {
        let regions: Vec<String> = text.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
        p.allowed_regions = (!regions.is_empty()).then_some(regions);
    }
    if errors.is_empty() { Ok(p) } else { Err(Error::Validation(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn edit<T: Clone>(was: T, now: T) -> Edit<T> {
        Edit { was, now }
    }

    #[test]
    fn a_form_saved_as_shown_changes_nothing() {
        let fields = MemberFields {
            name: "Zhang San".into(),
            phone: "+8613900139001".into(),
            departments: strings(&["dep_a", "dep_b"]),
            ..Default::default()
        };
        let patch = member_patch(&edit(fields.clone(), fields), &strings(&["dep_a", "dep_b"]), &[]);
        assert!(patch.is_empty());
    }

    #[test]
    fn only_the_changed_name_is_saved() {
        let was =
            MemberFields { name: "Zhang Sna".into(), departments: strings(&["dep_a", "dep_b"]), ..Default::default() };
        let now = MemberFields { name: "Zhang San".into(), ..was.clone() };
        let patch = member_patch(&edit(was, now), &strings(&["dep_a", "dep_b"]), &[]);
        assert_eq!(patch.name.as_deref(), Some("Zhang San"));
        assert!(patch.departments.is_none() && patch.phone.is_none() && patch.email.is_none());
    }

    #[test]
    fn ticks_apply_to_the_current_list_and_keep_what_the_form_did_not_show() {
        // The form showed dep_a and dep_b (dep_x is outside the admin's view); dep_c was added
        // elsewhere since the page was opened.
        let was = MemberFields { departments: strings(&["dep_a", "dep_b"]), ..Default::default() };
        let now = MemberFields { departments: strings(&["dep_a", "dep_d"]), ..Default::default() };
        let patch = member_patch(&edit(was, now), &strings(&["dep_a", "dep_x", "dep_b", "dep_c"]), &[]);
        assert_eq!(patch.departments, Some(strings(&["dep_a", "dep_x", "dep_c", "dep_d"])));
    }

    #[test]
    fn an_emptied_optional_field_is_cleared() {
        let was = MemberFields { email: "a@example.com".into(), title: "Engineer".into(), ..Default::default() };
        let now = MemberFields { email: " ".into(), title: "Engineer".into(), ..Default::default() };
        let patch = member_patch(&edit(was, now), &[], &[]);
        assert_eq!(patch.email, Some(None));
        assert_eq!(patch.title, None);
    }

    #[test]
    fn the_shown_values_travel_through_the_hidden_field() {
        let fields = MemberFields {
            name: "李 四 & co".into(),
            departments: strings(&["dep_a", "dep_b"]),
            admin_departments: strings(&["dep_a"]),
            ..Default::default()
        };
        let body = format!(
            "csrf=t&was={}&name=x&departments=dep_b",
            form_urlencoded::byte_serialize(shown(&fields).as_bytes()).collect::<String>()
        );
        let parsed: Edit<MemberFields> = Edit::parse(body.as_bytes()).expect("parsed");
        assert_eq!(parsed.was, fields);
        assert_eq!(parsed.now.departments, strings(&["dep_b"]));
        assert!(parsed.now.admin_departments.is_empty());
    }

    #[test]
    fn an_untouched_policy_field_keeps_its_stored_value() {
        let current = Policy { allowed_regions: Some(strings(&["CN", "HK"])), ..Policy::default() };
        let was = PolicyFields::of(&current);
        let now = PolicyFields { max_devices: "3".into(), require_password: Some("true".into()), ..was.clone() };
        let updated = policy_update(&edit(was, now), &current).expect("valid");
        assert_eq!(updated.allowed_regions, current.allowed_regions);
        assert_eq!(updated.max_devices, 3);
        assert!(updated.require_password);
        assert_eq!(updated.reverify_on_app_update, current.reverify_on_app_update);
    }

    #[test]
    fn a_changed_number_that_is_not_one_is_refused() {
        let current = Policy::default();
        let was = PolicyFields::of(&current);
        let now = PolicyFields { idle_timeout_days: "two weeks".into(), ..was.clone() };
        assert!(matches!(policy_update(&edit(was, now), &current), Err(Error::Validation(_))));
    }

    #[test]
    fn a_department_saved_as_shown_changes_nothing_and_a_bad_order_is_refused() {
        let was = DepartmentFields { name: "Sales".into(), parent_id: "dep_root".into(), order: "2".into() };
        assert!(matches!(department_patch(&edit(was.clone(), was.clone())), Ok(None)));
        let now = DepartmentFields { name: "Sales & Marketing".into(), ..was.clone() };
        let patch = department_patch(&edit(was.clone(), now)).expect("valid").expect("a change");
        assert_eq!(patch.name.as_deref(), Some("Sales & Marketing"));
        assert!(patch.parent_id.is_none() && patch.order.is_none());
        let now = DepartmentFields { order: "second".into(), ..was.clone() };
        assert!(department_patch(&edit(was, now)).is_err());
    }

    #[test]
    fn an_app_form_sends_only_changed_lists() {
        let was = AppFields {
            name: "Wiki".into(),
            redirect_uris: "https://a/cb\nhttps://b/cb".into(),
            scopes: strings(&["openid", "profile"]),
            ..Default::default()
        };
        let now = AppFields { redirect_uris: "https://a/cb\r\nhttps://b/cb\r\n".into(), ..was.clone() };
        let update = app_update(&edit(was.clone(), now));
        assert!(update.name.is_none() && update.redirect_uris.is_none() && update.scopes.is_none());
        let now = AppFields { scopes: strings(&["openid", "phone", "profile"]), ..was.clone() };
        assert_eq!(app_update(&edit(was, now)).scopes, Some(strings(&["openid", "profile", "phone"])));
    }
}

//! The org directory: the department tree and its members (SPEC section 2, step 2).

use crate::Services;
use crate::audit::{Caller, Page, page_limit};
use crate::error::{Error, Result, Validator};
use crate::ids::{DepartmentId, MemberId};
use crate::model::{Department, Enterprise, Member};
use crate::outbox::OutboxMessage;
use crate::phone::PhoneNumber;
use crate::sms::SmsContent;
use crate::store::{DirectoryChange, MemberFilter};
use crate::values::{DepartmentName, Email, MemberStatus, PersonName, Role, Title, UserId};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// The root department is level 1; no department may sit deeper than this.
pub const MAX_DEPARTMENT_DEPTH: usize = 15;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDepartmentInput {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    pub parent_id: Option<String>,
    pub order: Option<i64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentPatch {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub order: Option<i64>,
}

/// `POST /members` as given; [`Services::add_member`] parses every field and reports all bad ones.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMemberInput {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    pub phone: String,
    pub userid: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub departments: Option<Vec<String>>,
    pub role: Option<String>,
    pub admin_departments: Option<Vec<String>>,
    /// Whether to send the invitation SMS; defaults to true.
    pub invite: Option<bool>,
}

/// `PATCH /members/{id}`: absent fields are left alone; `email` and `title` may be `null` to clear.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: Option<String>,
    pub phone: Option<String>,
    pub userid: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub title: Option<Option<String>>,
    pub departments: Option<Vec<String>>,
    pub role: Option<String>,
    pub admin_departments: Option<Vec<String>>,
}

impl MemberPatch {
    /// Whether the patch names no field but (at most) the phone number.
    pub fn changes_only_phone(&self) -> bool {
        self.name.is_none()
            && self.userid.is_none()
            && self.email.is_none()
            && self.title.is_none()
            && self.departments.is_none()
            && self.role.is_none()
            && self.admin_departments.is_none()
    }

    /// Whether the patch names no field at all.
    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.changes_only_phone()
    }
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct ListMembersQuery {
    pub department: Option<String>,
    /// One status or several separated by commas.
    pub status: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    /// Members per page (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Disable,
    Enable,
    Depart,
}

/// The support view of one number in one enterprise.
pub struct PhoneLookup {
    pub phone: PhoneNumber,
    /// The member holding this number now (not departed), if any.
    pub member: Option<Member>,
    /// Earlier members with this number who departed.
    pub departed: Vec<Member>,
    /// What an admin can do so that this person can sign in: `add_member`, `resend_invitation`,
    /// `enable`, `wait_for_unlock` (or `unlock`), or none.
    pub suggested_fix: Option<&'static str>,
    /// The same, as a sentence for the person at the help desk.
    pub explanation: String,
    /// The current member's invitations, newest first, with SMS delivery state.
    pub invitations: Vec<crate::invitations::Invitation>,
    /// Recent login events of this number that concern this enterprise, newest first.
    pub recent_events: Vec<crate::login::LoginEvent>,
    /// Until when the number must wait after too many wrong codes in a row.
    pub locked_until: Option<crate::clock::Timestamp>,
    /// The current member's devices.
    pub devices: Vec<crate::sessions::Device>,
}

/// A department tree loaded whole, for the rules that look at ancestors and descendants.
pub struct DepartmentTree {
    by_id: HashMap<DepartmentId, Department>,
}

impl DepartmentTree {
    pub fn new(departments: Vec<Department>) -> Self {
        Self { by_id: departments.into_iter().map(|d| (d.id.clone(), d)).collect() }
    }

    pub fn get(&self, id: &DepartmentId) -> Option<&Department> {
        self.by_id.get(id)
    }

    pub fn root(&self) -> Option<&Department> {
        self.by_id.values().find(|d| d.parent_id.is_none())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Department> {
        self.by_id.values()
    }

    pub fn insert(&mut self, d: Department) {
        self.by_id.insert(d.id.clone(), d);
    }

    /// Level of a department: the root is 1.
    pub fn depth(&self, id: &DepartmentId) -> usize {
        let mut depth = 0;
        let mut cursor = self.by_id.get(id);
        while let Some(d) = cursor {
            depth += 1;
            if depth > MAX_DEPARTMENT_DEPTH * 4 {
                break; // a cycle would be a storage bug; do not spin on it
            }
            cursor = d.parent_id.as_ref().and_then(|p| self.by_id.get(p));
        }
        depth
    }

    /// Whether `id` is one of `roots` or below one of them.
    pub fn within_any(&self, id: &DepartmentId, roots: &[DepartmentId]) -> bool {
        roots.iter().any(|root| self.is_within(id, root))
    }

    pub fn is_within(&self, id: &DepartmentId, ancestor: &DepartmentId) -> bool {
        let mut cursor = Some(id);
        let mut steps = 0;
        while let Some(current) = cursor {
            if current == ancestor {
                return true;
            }
            steps += 1;
            if steps > MAX_DEPARTMENT_DEPTH * 4 {
                return false;
            }
            cursor = self.by_id.get(current).and_then(|d| d.parent_id.as_ref());
        }
        false
    }

    /// How many levels the subtree under `id` spans, counting `id` itself as 1.
    pub fn height(&self, id: &DepartmentId) -> usize {
        self.by_id.values().filter(|d| self.is_within(&d.id, id)).map(|d| self.depth(&d.id)).max().unwrap_or(0) + 1
            - self.depth(id)
    }

    pub fn next_order(&self, parent: &DepartmentId) -> i64 {
        self.by_id.values().filter(|d| d.parent_id.as_ref() == Some(parent)).map(|d| d.order + 1).max().unwrap_or(0)
    }

    pub fn child_named(&self, parent: &DepartmentId, name: &str) -> Option<&Department> {
        self.by_id.values().find(|d| d.parent_id.as_ref() == Some(parent) && d.name.as_str() == name)
    }
}

impl Services {
    async fn department_tree(&self, caller: &Caller) -> Result<DepartmentTree> {
        Ok(DepartmentTree::new(self.store.list_departments(&caller.enterprise_id).await?))
    }

    pub async fn list_departments(&self, caller: &Caller) -> Result<Vec<Department>> {
        let mut all = self.store.list_departments(&caller.enterprise_id).await?;
        if let Some(roots) = caller.department_scope() {
            let tree = DepartmentTree::new(all.clone());
            all.retain(|d| tree.within_any(&d.id, roots));
        }
        all.sort_by(|a, b| (a.parent_id.is_some(), a.order, &a.id).cmp(&(b.parent_id.is_some(), b.order, &b.id)));
        Ok(all)
    }

    pub async fn get_department(&self, caller: &Caller, id: &str) -> Result<Department> {
        let id = DepartmentId::parse(id).ok_or(Error::NotFound("department"))?;
        let department =
            self.store.get_department(&caller.enterprise_id, &id).await?.ok_or(Error::NotFound("department"))?;
        if let Some(roots) = caller.department_scope() {
            let tree = self.department_tree(caller).await?;
            if !tree.within_any(&department.id, roots) {
                return Err(outside_scope());
            }
        }
        Ok(department)
    }

    pub async fn create_department(&self, caller: &Caller, input: NewDepartmentInput) -> Result<Department> {
        let name = DepartmentName::parse(&input.name)?;
        let tree = self.department_tree(caller).await?;
        let parent = match input.parent_id.as_deref() {
            Some(p) => department_in(&tree, p, "parent_id")?,
            None => tree.root().ok_or(Error::Internal("enterprise without a root department".into()))?,
        };
        if let Some(roots) = caller.department_scope()
            && !tree.within_any(&parent.id, roots)
        {
            return Err(outside_scope());
        }
        if tree.depth(&parent.id) + 1 > MAX_DEPARTMENT_DEPTH {
            return Err(Error::field(
                "parent_id",
                format!("departments may be at most {MAX_DEPARTMENT_DEPTH} levels deep"),
            ));
        }
        let department = Department {
            id: DepartmentId::generate(),
            enterprise_id: caller.enterprise_id.clone(),
            name,
            parent_id: Some(parent.id.clone()),
            order: input.order.unwrap_or_else(|| tree.next_order(&parent.id)),
        };
        let audit = caller.entry(
            self.clock.now(),
            "department.create",
            Some(department.id.as_str()),
            json!({"name": department.name.as_str(), "parent_id": parent.id}),
        );
        self.store.insert_department(&department, &audit).await?;
        Ok(department)
    }

    /// Renames, reorders or moves a department (with its whole subtree).
    pub async fn update_department(&self, caller: &Caller, id: &str, patch: DepartmentPatch) -> Result<Department> {
        let tree = self.department_tree(caller).await?;
        let current = department_in(&tree, id, "id").map_err(|_| Error::NotFound("department"))?;
        if let Some(roots) = caller.department_scope() {
            let moves_a_root = patch.parent_id.is_some() && roots.contains(&current.id);
            let leaves_scope =
                patch.parent_id.as_deref().and_then(DepartmentId::parse).is_some_and(|p| !tree.within_any(&p, roots));
            if !tree.within_any(&current.id, roots) || moves_a_root || leaves_scope {
                return Err(outside_scope());
            }
        }
        let mut updated = current.clone();
        let mut v = Validator::default();
        if let Some(name) = patch.name.as_deref().and_then(|n| v.check("name", DepartmentName::parse(n))) {
            updated.name = name;
        }
        if let Some(order) = patch.order {
            updated.order = order;
        }
        if let Some(parent) = patch.parent_id.as_deref() {
            match (current.parent_id.is_none(), department_in(&tree, parent, "parent_id")) {
                (true, _) => v.push("parent_id", "the root department cannot be moved"),
                (false, Err(_)) => v.push("parent_id", "no such department in this enterprise"),
                (false, Ok(new_parent)) => {
                    if tree.is_within(&new_parent.id, &current.id) {
                        v.push("parent_id", "a department cannot be moved under itself or its own sub-department");
                    } else if tree.depth(&new_parent.id) + tree.height(&current.id) > MAX_DEPARTMENT_DEPTH {
                        v.push(
                            "parent_id",
                            format!("the move would make the tree deeper than {MAX_DEPARTMENT_DEPTH} levels"),
                        );
                    } else if updated.parent_id.as_ref() != Some(&new_parent.id) {
                        updated.parent_id = Some(new_parent.id.clone());
                        if patch.order.is_none() {
                            updated.order = tree.next_order(&new_parent.id);
                        }
                    }
                }
            }
        }
        v.finish()?;
        if &updated == current {
            return Ok(updated);
        }
        let action = if updated.parent_id != current.parent_id { "department.move" } else { "department.update" };
        let audit = caller.entry(
            self.clock.now(),
            action,
            Some(updated.id.as_str()),
            json!({
                "name": updated.name.as_str(),
                "previous_name": current.name.as_str(),
                "parent_id": updated.parent_id,
                "previous_parent_id": current.parent_id,
                "order": updated.order,
            }),
        );
        self.store.update_department(&updated, &audit).await?;
        Ok(updated)
    }

    pub async fn delete_department(&self, caller: &Caller, id: &str) -> Result<()> {
        let department = self.get_department(caller, id).await?;
        if caller.department_scope().is_some_and(|roots| roots.contains(&department.id)) {
            return Err(outside_scope());
        }
        if department.parent_id.is_none() {
            return Err(Error::Conflict("the root department cannot be deleted".into()));
        }
        let audit = caller.entry(
            self.clock.now(),
            "department.delete",
            Some(department.id.as_str()),
            json!({"name": department.name.as_str()}),
        );
        self.store.delete_department(&caller.enterprise_id, &department.id, &audit).await
    }

    pub async fn add_member(&self, caller: &Caller, input: NewMemberInput) -> Result<Member> {
        let enterprise = self.enterprise(caller).await?;
        let tree = self.department_tree(caller).await?;
        let member = build_member(&enterprise, &tree, &input, self.clock.now())?;
        if caller.department_scope().is_some() && input.departments.as_ref().is_none_or(Vec::is_empty) {
            return Err(Error::Forbidden(
                "a department admin adds members only to the departments they administer; list them in 'departments'"
                    .into(),
            ));
        }
        let policy = self.policy_of(&caller.enterprise_id).await?.policy;
        caller.check_member_write(&tree, &policy, None, &member)?;
        let audit = caller.entry(
            member.created_at,
            "member.create",
            Some(member.id.as_str()),
            json!({"userid": member.userid.as_str(), "phone": member.phone.as_str(), "role": member.role.as_str()}),
        );
        let invitation =
            (input.invite != Some(false)).then(|| self.new_invitation(&enterprise, &member, member.created_at));
        if invitation.is_some() {
            // Invitations count in the enterprise's budget (a leaked key cannot pump SMS).
            self.hit_limits(&[self.invitation_budget(&enterprise.id)]).await?;
        }
        self.store.insert_member(&member, &audit, invitation.as_ref()).await?;
        if invitation.is_some() {
            self.outbox_written();
            self.count_first_invitation(&member.phone).await;
        }
        Ok(member)
    }

    pub async fn get_member(&self, caller: &Caller, id: &str) -> Result<Member> {
        let id = MemberId::parse(id).ok_or(Error::NotFound("member"))?;
        let member = self.store.get_member(&caller.enterprise_id, &id).await?.ok_or(Error::NotFound("member"))?;
        if let Some(roots) = caller.department_scope() {
            let tree = self.department_tree(caller).await?;
            if !member_in(&tree, roots, &member) {
                return Err(outside_scope());
            }
        }
        Ok(member)
    }

    /// A patch names only what changes, so a record changed meanwhile by someone else (a sign-in
    /// activating the member, another admin) is no reason to refuse it: the change is computed
    /// again from the record as it is now, with every check, and refused only if that keeps failing.
    pub async fn update_member(&self, caller: &Caller, id: &str, patch: MemberPatch) -> Result<Member> {
        again_if_changed_meanwhile(|| self.update_member_once(caller, id, &patch)).await
    }

    async fn update_member_once(&self, caller: &Caller, id: &str, patch: &MemberPatch) -> Result<Member> {
        let current = self.get_member(caller, id).await?;
        if current.status == MemberStatus::Departed {
            return Err(Error::Conflict("this member has departed; departed records cannot be changed".into()));
        }
        let enterprise = self.enterprise(caller).await?;
        let tree = self.department_tree(caller).await?;
        let updated = apply_patch(&enterprise, &tree, &current, patch, self.clock.now())?;
        if updated == current {
            return Ok(current);
        }
        let policy = self.policy_of(&caller.enterprise_id).await?.policy;
        caller.check_member_write(&tree, &policy, Some(&current), &updated)?;
        let mut details = member_diff(&current, &updated);
        if updated.phone == current.phone {
            let audit = caller.entry(updated.updated_at, "member.update", Some(updated.id.as_str()), details);
            self.store.update_member(&current, &updated, &audit).await?;
            return Ok(updated);
        }
        // A new number is a new authenticator: the store ends every session, device trust and
        // app grant of the member in the same transaction, and both numbers are told.
        details["signed_out"] = json!(true);
        let audit = caller.entry(updated.updated_at, "member.update", Some(updated.id.as_str()), details);
        let mut changes =
            vec![DirectoryChange::UpdateMember { previous: Box::new(current.clone()), member: updated.clone() }];
        changes.extend(
            phone_change_notices(self.keys(), &enterprise, &current, &updated)
                .map(|m| DirectoryChange::Notify(Box::new(m))),
        );
        self.store.apply_directory_changes(&caller.enterprise_id, &changes, &[audit]).await?;
        self.outbox_written();
        Ok(updated)
    }

    /// Disable, enable or depart. Repeating a change that is already in effect changes nothing.
    pub async fn change_member_status(&self, caller: &Caller, id: &str, change: StatusChange) -> Result<Member> {
        again_if_changed_meanwhile(|| self.change_member_status_once(caller, id, change)).await
    }

    async fn change_member_status_once(&self, caller: &Caller, id: &str, change: StatusChange) -> Result<Member> {
        let current = self.get_member(caller, id).await?;
        let target = match (change, current.status) {
            (_, MemberStatus::Departed) if change != StatusChange::Depart => {
                return Err(Error::Conflict(
                    "this member has departed; add the number again as a new member instead".into(),
                ));
            }
            (StatusChange::Disable, MemberStatus::Invited | MemberStatus::Active) => MemberStatus::Disabled,
            (StatusChange::Enable, MemberStatus::Disabled) => {
                if current.activated_at.is_some() {
                    MemberStatus::Active
                } else {
                    MemberStatus::Invited
                }
            }
            (StatusChange::Depart, status) if status != MemberStatus::Departed => MemberStatus::Departed,
            // Nothing to change; still, a member above the caller's rank is out of its reach.
            _ if !caller.outranks(current.role) => {
                return Err(Error::Forbidden(format!(
                    "only someone who outranks a member with the role '{}' can change their status",
                    current.role.as_str()
                )));
            }
            _ => return Ok(current),
        };
        let mut updated = current.clone();
        updated.status = target;
        updated.updated_at = self.clock.now();
        let tree = self.department_tree(caller).await?;
        let policy = self.policy_of(&caller.enterprise_id).await?.policy;
        caller.check_member_write(&tree, &policy, Some(&current), &updated)?;
        let action = match change {
            StatusChange::Disable => "member.disable",
            StatusChange::Enable => "member.enable",
            StatusChange::Depart => "member.depart",
        };
        let audit = caller.entry(
            updated.updated_at,
            action,
            Some(updated.id.as_str()),
            json!({"from": current.status.as_str(), "to": target.as_str()}),
        );
        self.store.update_member(&current, &updated, &audit).await?;
        Ok(updated)
    }

    pub async fn list_members(&self, caller: &Caller, query: ListMembersQuery) -> Result<Page<Member>> {
        let limit = page_limit(query.limit)?;
        let mut v = Validator::default();
        let department = query.department.as_deref().map(|d| {
            DepartmentId::parse(d).ok_or_else(|| Error::field("department", "no such department in this enterprise"))
        });
        let department = department.and_then(|r| v.check("department", r));
        let statuses = match query.status.as_deref() {
            None | Some("") => vec![],
            Some(s) => s.split(',').filter_map(|s| v.check("status", MemberStatus::parse(s.trim()))).collect(),
        };
        let after = query
            .cursor
            .as_deref()
            .map(|c| MemberId::parse(c).ok_or_else(|| Error::field("cursor", "is not a cursor from a previous page")));
        let after = after.and_then(|r| v.check("cursor", r));
        let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 64) {
            v.push("q", "must be at most 64 characters");
        }
        v.finish()?;
        if let Some(d) = &department
            && self.store.get_department(&caller.enterprise_id, d).await?.is_none()
        {
            return Err(Error::field("department", "no such department in this enterprise"));
        }
        let within = match caller.department_scope() {
            None => vec![],
            Some(roots) => {
                if let Some(d) = &department {
                    let tree = self.department_tree(caller).await?;
                    if !tree.within_any(d, roots) {
                        return Err(outside_scope());
                    }
                }
                roots.to_vec()
            }
        };
        let filter =
            MemberFilter { department, within, statuses, query: q.map(str::to_string), after, limit: limit + 1 };
        let mut items = self.store.list_members(&caller.enterprise_id, &filter).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|m| m.id.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// The support view: "why can't this person sign in?" answered from the database alone.
    pub async fn lookup_member_by_phone(&self, caller: &Caller, phone: &str) -> Result<PhoneLookup> {
        let enterprise = self.enterprise(caller).await?;
        let phone = PhoneNumber::parse(phone, enterprise.region)?;
        let mut records = self.store.find_members_by_phone(&caller.enterprise_id, &phone).await?;
        // A department admin sees a number outside its subtrees exactly as one that is no member
        // here: a refusal would tell that the number belongs to someone it may not see.
        if let Some(roots) = caller.department_scope()
            && !records.is_empty()
        {
            let tree = self.department_tree(caller).await?;
            records.retain(|m| member_in(&tree, roots, m));
        }
        let known_here = !records.is_empty();
        let (departed, current): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|m| m.status == MemberStatus::Departed);
        let member = current.into_iter().next();
        let now = self.clock.now();
        // A number that was never a member here shows nothing of its logins elsewhere.
        let (recent_events, locked_until) = if known_here {
            let events = self.store.login_events_for_phone(&phone, &caller.enterprise_id, 20).await?;
            let events = events.into_iter().filter_map(|e| e.seen_by(&caller.enterprise_id)).collect();
            let until = self.store.phone_locked_until(&phone).await?;
            (events, (until > now.millis()).then_some(crate::clock::Timestamp(until)))
        } else {
            (vec![], None)
        };
        let (invitations, devices) = match &member {
            Some(m) => (
                self.store.list_invitations(&caller.enterprise_id, &m.id).await?,
                self.store.list_devices(&caller.enterprise_id, &m.id).await?,
            ),
            None => (vec![], vec![]),
        };
        let (suggested_fix, explanation) =
            diagnose(member.as_ref(), !departed.is_empty(), &invitations, locked_until, now);
        Ok(PhoneLookup {
            phone,
            member,
            departed,
            suggested_fix,
            explanation,
            invitations,
            recent_events,
            locked_until,
            devices,
        })
    }
}

/// The likeliest reason a number cannot sign in here, and what fixes it.
fn diagnose(
    member: Option<&Member>,
    departed_before: bool,
    invitations: &[crate::invitations::Invitation],
    locked_until: Option<crate::clock::Timestamp>,
    now: crate::clock::Timestamp,
) -> (Option<&'static str>, String) {
    let Some(member) = member else {
        let why = if departed_before {
            "This number belonged to a member who has departed. Add it again as a new member."
        } else {
            "This number is not a member of this enterprise. Check it for typos, or add the member."
        };
        return (Some("add_member"), why.into());
    };
    if member.status == MemberStatus::Disabled {
        return (Some("enable"), "The member is disabled. Enable them to let them sign in again.".into());
    }
    if let Some(until) = locked_until {
        return (
            Some("wait_for_unlock"),
            format!(
                "Too many wrong codes in a row: the number may try again at {}, or an admin can unlock it now.",
                until.to_rfc3339()
            ),
        );
    }
    if member.status == MemberStatus::Invited {
        let latest = invitations.first();
        let why = match latest {
            None => "The member was added without an invitation. Send one.".to_string(),
            Some(i) if i.state != crate::invitations::InvitationState::Pending || !i.is_usable(now) => {
                "The member's invitation link has expired or was replaced. Re-send the invitation.".to_string()
            }
            Some(i) => match i.delivery.as_ref().map(|d| d.state.as_str()) {
                Some("failed") => {
                    "The invitation SMS could not be delivered. Check the number, then re-send.".to_string()
                }
                Some("sent") => "The invitation was delivered but the member has not signed in yet. They can sign in \
                     with their number at any time; re-send if they lost the message."
                    .to_string(),
                _ => "The invitation SMS is still being delivered. Wait a minute, then re-send if it does not arrive."
                    .to_string(),
            },
        };
        return (Some("resend_invitation"), why);
    }
    (None, "The member is active and can sign in with their number.".into())
}

/// The SMS of a phone change: one to the old number (in case the change was not theirs), one to
/// the new number.
pub(crate) fn phone_change_notices(
    keys: &crate::keys::ServerKeys,
    enterprise: &Enterprise,
    before: &Member,
    after: &Member,
) -> [OutboxMessage; 2] {
    let content = SmsContent::PhoneChanged {
        enterprise: enterprise.name.to_string(),
        member: after.name.to_string(),
        old_number: before.phone.masked(),
        new_number: after.phone.masked(),
    };
    let message = |phone: &PhoneNumber| {
        OutboxMessage::sealed(keys, Some(enterprise.id.clone()), phone.clone(), &content, after.updated_at)
    };
    [message(&before.phone), message(&after.phone)]
}

/// The answer to a department admin reaching outside their subtrees.
fn outside_scope() -> Error {
    Error::Forbidden("this is outside the departments you administer".into())
}

/// Whether a member belongs to a department inside one of `roots`' subtrees.
fn member_in(tree: &DepartmentTree, roots: &[DepartmentId], member: &Member) -> bool {
    member.departments.iter().any(|d| tree.within_any(d, roots))
}

/// Looks a department id from a request up in the tree; a malformed or foreign id is "no such
/// department" for `field`.
fn department_in<'t>(tree: &'t DepartmentTree, id: &str, field: &str) -> Result<&'t Department> {
    DepartmentId::parse(id)
        .and_then(|id| tree.get(&id))
        .ok_or_else(|| Error::field(field, "no such department in this enterprise"))
}

fn departments_in(tree: &DepartmentTree, ids: &[String], field: &str, v: &mut Validator) -> Vec<DepartmentId> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match department_in(tree, id, field) {
            Ok(d) => {
                if seen.insert(d.id.clone()) {
                    out.push(d.id.clone());
                }
            }
            Err(_) => v.push(&format!("{field}[{i}]"), "no such department in this enterprise"),
        }
    }
    out
}

/// Parses a new member in full; every bad field is reported at once.
pub fn build_member(
    enterprise: &Enterprise,
    tree: &DepartmentTree,
    input: &NewMemberInput,
    now: crate::clock::Timestamp,
) -> Result<Member> {
    let mut v = Validator::default();
    let name = v.check("name", PersonName::parse(&input.name));
    let (phone, phone_error) = match PhoneNumber::parse(&input.phone, enterprise.region) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    };
    let userid = match input.userid.as_deref() {
        Some(u) => v.check("userid", UserId::parse(u)),
        None => Some(UserId::generate()),
    };
    let email = input.email.as_deref().map(|e| v.check("email", Email::parse(e)));
    let title = input.title.as_deref().map(|t| v.check("title", Title::parse(t)));
    let role = v.check("role", input.role.as_deref().map_or(Ok(Role::Member), Role::parse));
    let mut departments = match &input.departments {
        Some(ids) => departments_in(tree, ids, "departments", &mut v),
        None => vec![],
    };
    if departments.is_empty() {
        departments.extend(tree.root().map(|r| r.id.clone()));
    }
    let admin_departments =
        departments_in(tree, input.admin_departments.as_deref().unwrap_or(&[]), "admin_departments", &mut v);
    if let Some(role) = role {
        check_admin_scope(role, &admin_departments, &mut v);
    }
    // A number that fails to parse is the likeliest mistake: alone, it is answered as
    // `invalid_phone` with what was understood; with other bad fields, it is one of them.
    if let Some(e) = phone_error {
        if v.is_empty() {
            return Err(e);
        }
        v.check::<()>("phone", Err(e));
    }
    v.finish()?;
    let (Some(name), Some(phone), Some(userid), Some(role)) = (name, phone, userid, role) else {
        return Err(Error::Internal("validator passed with a missing field".into()));
    };
    Ok(Member {
        id: MemberId::generate(),
        enterprise_id: enterprise.id.clone(),
        userid,
        name,
        phone,
        email: email.flatten(),
        title: title.flatten(),
        departments,
        role,
        admin_departments,
        status: MemberStatus::Invited,
        created_at: now,
        activated_at: None,
        updated_at: now,
    })
}

fn check_admin_scope(role: Role, scope: &[DepartmentId], v: &mut Validator) {
    match role {
        Role::DepartmentAdmin if scope.is_empty() => {
            v.push("admin_departments", "a department_admin needs at least one department to administer")
        }
        Role::DepartmentAdmin => {}
        _ if !scope.is_empty() => v.push("admin_departments", "only a department_admin has admin_departments"),
        _ => {}
    }
}

/// Applies a patch to a member; every bad field is reported at once.
pub fn apply_patch(
    enterprise: &Enterprise,
    tree: &DepartmentTree,
    current: &Member,
    patch: &MemberPatch,
    now: crate::clock::Timestamp,
) -> Result<Member> {
    let mut v = Validator::default();
    let mut m = current.clone();
    if let Some(name) = patch.name.as_deref().and_then(|n| v.check("name", PersonName::parse(n))) {
        m.name = name;
    }
    if let Some(raw) = patch.phone.as_deref() {
        match PhoneNumber::parse(raw, enterprise.region) {
            Ok(phone) => m.phone = phone,
            Err(e) if patch.changes_only_phone() => return Err(e),
            Err(e) => {
                v.check::<()>("phone", Err(e));
            }
        }
    }
    if let Some(userid) = patch.userid.as_deref().and_then(|u| v.check("userid", UserId::parse(u))) {
        m.userid = userid;
    }
    match &patch.email {
        Some(Some(e)) => m.email = v.check("email", Email::parse(e)).or(m.email),
        Some(None) => m.email = None,
        None => {}
    }
    match &patch.title {
        Some(Some(t)) => m.title = v.check("title", Title::parse(t)).or(m.title),
        Some(None) => m.title = None,
        None => {}
    }
    if let Some(ids) = &patch.departments {
        let departments = departments_in(tree, ids, "departments", &mut v);
        if departments.is_empty() && ids.is_empty() {
            v.push("departments", "a member belongs to at least one department");
        }
        m.departments = departments;
    }
    if let Some(role) = patch.role.as_deref().and_then(|r| v.check("role", Role::parse(r))) {
        m.role = role;
        if role != Role::DepartmentAdmin && patch.admin_departments.is_none() {
            m.admin_departments.clear();
        }
    }
    if let Some(ids) = &patch.admin_departments {
        m.admin_departments = departments_in(tree, ids, "admin_departments", &mut v);
    }
    check_admin_scope(m.role, &m.admin_departments, &mut v);
    v.finish()?;
    if m != *current {
        m.updated_at = now;
    }
    Ok(m)
}

/// The fields that changed, as `{field: {from, to}}` for the audit log.
pub fn member_diff(before: &Member, after: &Member) -> serde_json::Value {
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changes.insert(field.to_string(), json!({"from": from, "to": to}));
        }
    };
    note("name", json!(before.name.as_str()), json!(after.name.as_str()));
    note("phone", json!(before.phone.as_str()), json!(after.phone.as_str()));
    note("userid", json!(before.userid.as_str()), json!(after.userid.as_str()));
    note("email", json!(before.email.as_ref().map(Email::as_str)), json!(after.email.as_ref().map(Email::as_str)));
    note("title", json!(before.title.as_ref().map(Title::as_str)), json!(after.title.as_ref().map(Title::as_str)));
    note("departments", json!(before.departments), json!(after.departments));
    note("role", json!(before.role.as_str()), json!(after.role.as_str()));
    note("admin_departments", json!(before.admin_departments), json!(after.admin_departments));
    serde_json::Value::Object(changes)
}

/// How many times a change is computed from a freshly read record before a concurrent writer
/// that keeps changing it wins and the caller is told to reload.
const ATTEMPTS_WHEN_CHANGED_MEANWHILE: usize = 4;

async fn again_if_changed_meanwhile<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    for _ in 1..ATTEMPTS_WHEN_CHANGED_MEANWHILE {
        match attempt().await {
            Err(Error::ChangedMeanwhile(_)) => continue,
            done => return done,
        }
    }
    attempt().await
}

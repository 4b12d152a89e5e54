//! The rank rule: who may write which member. Every path that writes a member (add, patch,
//! disable/enable/depart, bulk import, the console) asks [`Caller::check_member_write`], so that
//! nobody climbs above their rank by one path that another refuses.
//!
//! Ranks, highest first: owner (and the operator: an API key or the command line), admin,
//! department admin, member. To change a member's identity (phone, userid, email, role, admin
//! scope, status) the caller must outrank the member: an owner outranks everyone (owners
//! included), an admin outranks department admins and members, a department admin outranks
//! members inside its subtrees. Nobody gives a role above their own (an admin may make admins,
//! not owners; a department admin gives no roles). The enterprise policy's `allowed_regions`
//! applies to every number written.

use crate::audit::{Caller, Rights};
use crate::directory::DepartmentTree;
use crate::error::{Error, Result};
use crate::ids::DepartmentId;
use crate::model::Member;
use crate::policy::Policy;
use crate::values::Role;

impl Caller {
    /// Whether this caller outranks a member holding `role`.
    pub fn outranks(&self, role: Role) -> bool {
        match self.rights {
            // Owners may change owners; an API key (HR sync) and the CLI act with an owner's rank.
            Rights::Operator | Rights::Owner => true,
            Rights::Admin => matches!(role, Role::DepartmentAdmin | Role::Member),
            Rights::Departments(_) => role == Role::Member,
        }
    }

    /// Whether this caller may give `role` (to a new member or by a change): no role above its own.
    pub fn may_grant(&self, role: Role) -> bool {
        match self.rights {
            Rights::Operator | Rights::Owner => true,
            Rights::Admin => role != Role::Owner,
            Rights::Departments(_) => false,
        }
    }

    /// The one rule of every write of a member: `before` is the stored member (`None` when it is
    /// created), `after` what is about to be written. Answers `forbidden` when the caller may not
    /// make this change, `invalid_phone` when the number is from a region the policy refuses.
    pub fn check_member_write(
        &self,
        tree: &DepartmentTree,
        policy: &Policy,
        before: Option<&Member>,
        after: &Member,
    ) -> Result<()> {
        if let Some(roots) = self.department_scope() {
            if before.is_some_and(|b| !in_subtrees(tree, roots, b)) || !in_subtrees(tree, roots, after) {
                return Err(Error::Forbidden("this is outside the departments you administer".into()));
            }
            if before.is_some_and(|b| b.role != Role::Member) {
                return Err(Error::Forbidden("a department admin changes only members, not admins or owners".into()));
            }
        }
        let (role_before, scope_before) = match before {
            Some(m) => (m.role, m.admin_departments.as_slice()),
            None => (Role::Member, &[][..]),
        };
        if role_before != after.role || scope_before != after.admin_departments.as_slice() {
            if self.department_scope().is_some() {
                return Err(Error::Forbidden("a department admin cannot change roles".into()));
            }
            if (role_before == Role::Owner || after.role == Role::Owner) && !self.outranks(Role::Owner) {
                return Err(Error::Forbidden("only an owner can make or unmake owners".into()));
            }
            if !self.may_grant(after.role) {
                return Err(Error::Forbidden(format!(
                    "you cannot give the role '{}': it is above your own",
                    after.role.as_str()
                )));
            }
        }
        if let Some(b) = before
            && identity_changes(b, after)
            && !self.outranks(b.role)
        {
            return Err(Error::Forbidden(format!(
                "only someone who outranks a member with the role '{}' can change their phone, userid, email, \
                 role or status",
                b.role.as_str()
            )));
        }
        if before.is_none_or(|b| b.phone != after.phone) && !policy.allows_region(after.phone.region().as_deref()) {
            return Err(Error::InvalidPhone {
                detail: format!("{} is from a region this enterprise's policy does not allow", after.phone),
            });
        }
        Ok(())
    }
}

/// Whether a write changes what identifies the member or what they may do.
fn identity_changes(before: &Member, after: &Member) -> bool {
    before.phone != after.phone
        || before.userid != after.userid
        || before.email != after.email
        || before.role != after.role
        || before.admin_departments != after.admin_departments
        || before.status != after.status
}

/// Whether a member belongs to a department inside one of `roots`' subtrees.
fn in_subtrees(tree: &DepartmentTree, roots: &[DepartmentId], member: &Member) -> bool {
    member.departments.iter().any(|d| tree.within_any(d, roots))
}

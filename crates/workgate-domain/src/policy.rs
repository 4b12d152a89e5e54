//! Per-enterprise security policy (SPEC section 5): what a device must do to stay trusted.
//!
//! A change that tightens security (a password now required, device approval now required, fewer
//! devices, fewer regions) moves `tightened_at` forward; a device verified before that must verify
//! again at its next refresh (`policy_changed`). Shorter periods need no such mark: the periodic
//! and idle checks apply the new numbers directly.

use crate::Services;
use crate::audit::Caller;
use crate::clock::Timestamp;
use crate::error::{Error, Result, Validator};
use crate::phone::Region;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A password is a second step after the SMS code; set at activation.
    pub require_password: bool,
    /// A device must pass an SMS code again after this many days.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub reverify_after_days: u32,
    /// A device unused this many days must verify again.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub idle_timeout_days: u32,
    /// A change of `app_version` asks for verification.
    pub reverify_on_app_update: bool,
    /// Trusted devices per member.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max_devices: u32,
    /// A new device waits for an admin's approval.
    pub require_device_approval: bool,
    /// Lifetime of a member's access token.
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 86_400))]
    pub access_token_ttl_seconds: u32,
    /// Country codes whose numbers may be added and sign in; `null` means all.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub allowed_regions: Option<Vec<String>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_password: false,
            reverify_after_days: 30,
            idle_timeout_days: 14,
            reverify_on_app_update: true,
            max_devices: 5,
            require_device_approval: false,
            access_token_ttl_seconds: 900,
            allowed_regions: None,
        }
    }
}

/// A policy as stored, with the moment it last tightened.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub policy: Policy,
    pub tightened_at: Timestamp,
    pub updated_at: Timestamp,
}

impl StoredPolicy {
    /// What applies while an admin has set no policy.
    pub fn defaults() -> Self {
        StoredPolicy { policy: Policy::default(), tightened_at: Timestamp(0), updated_at: Timestamp(0) }
    }

    /// When the policy last changed, as `GET /policy` shows it; `None` while the defaults apply.
    pub fn updated_at_text(&self) -> Option<String> {
        (self.updated_at.millis() > 0).then(|| self.updated_at.to_rfc3339())
    }
}

impl Policy {
    /// Checks the numbers and normalises the regions; every bad field is reported.
    pub fn validated(mut self) -> Result<Self> {
        let mut v = Validator::default();
        if !(1..=3650).contains(&self.reverify_after_days) {
            v.push("reverify_after_days", "must be between 1 and 3650");
        }
        if !(1..=3650).contains(&self.idle_timeout_days) {
            v.push("idle_timeout_days", "must be between 1 and 3650");
        }
        if !(1..=100).contains(&self.max_devices) {
            v.push("max_devices", "must be between 1 and 100");
        }
        if !(60..=86_400).contains(&self.access_token_ttl_seconds) {
            v.push("access_token_ttl_seconds", "must be between 60 and 86400");
        }
        if let Some(regions) = &self.allowed_regions {
            let mut normalised = Vec::new();
            for (i, r) in regions.iter().enumerate() {
                match Region::parse(r) {
                    Ok(region) => {
                        let code = region.as_str().to_string();
                        if !normalised.contains(&code) {
                            normalised.push(code);
                        }
                    }
                    Err(_) => {
                        v.push(&format!("allowed_regions[{i}]"), format!("'{r}' is not a region code such as CN"))
                    }
                }
            }
            if regions.is_empty() {
                v.push("allowed_regions", "must name at least one region, or be null for all");
            }
            self.allowed_regions = Some(normalised);
        }
        v.finish()?;
        Ok(self)
    }

    /// Whether `new` asks more of existing devices than `self` did.
    pub fn is_tightened_by(&self, new: &Policy) -> bool {
        let regions_narrowed = match (&self.allowed_regions, &new.allowed_regions) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(old), Some(new)) => new.iter().any(|r| !old.contains(r)) || old.iter().any(|r| !new.contains(r)),
        };
        (!self.require_password && new.require_password)
            || (!self.require_device_approval && new.require_device_approval)
            || new.max_devices < self.max_devices
            || (!self.reverify_on_app_update && new.reverify_on_app_update)
            || regions_narrowed
    }

    /// Whether numbers of `region` may be members and sign in.
    pub fn allows_region(&self, region: Option<&str>) -> bool {
        match (&self.allowed_regions, region) {
            (None, _) => true,
            (Some(list), Some(r)) => list.iter().any(|a| a == r),
            (Some(_), None) => false,
        }
    }
}

/// How many times a policy change is made again on the policy as it now is, when another change
/// was stored between its read and its write.
const POLICY_CHANGE_TRIES: usize = 5;

impl Services {
    /// The enterprise's policy (the defaults until an admin sets one).
    pub async fn policy_of(&self, enterprise: &crate::ids::EnterpriseId) -> Result<StoredPolicy> {
        Ok(self.store.get_policy(enterprise).await?.unwrap_or_else(StoredPolicy::defaults))
    }

    pub async fn get_policy(&self, caller: &Caller) -> Result<StoredPolicy> {
        caller.require_settings_rights()?;
        self.policy_of(&caller.enterprise_id).await
    }

    /// `PUT /policy`: replaces the policy. `read_at` is the `updated_at` the caller read with the
    /// policy it changed (a read-modify-write): if the policy changed since, the change is refused
    /// rather than undoing the other one.
    pub async fn put_policy(&self, caller: &Caller, new: Policy, read_at: Option<&str>) -> Result<StoredPolicy> {
        // Bad fields are reported before anything is read, whatever version the caller named.
        caller.require_settings_rights()?;
        let new = new.validated()?;
        self.change_policy(caller, |current| {
            let stored_at = current.updated_at_text();
            if let Some(read_at) = read_at
                && Some(read_at) != stored_at.as_deref()
            {
                return Err(Error::Conflict(format!(
                    "the policy changed at {} after it was read (updated_at {read_at}); read it again and make the change on what it is now",
                    stored_at.as_deref().unwrap_or("an unknown time")
                )));
            }
            Ok(new.clone())
        })
        .await
    }

    /// Changes the policy: `change` makes the new policy from the stored one, read from the
    /// database itself (not a node's cache), and the write stands only if the policy is still the
    /// one read; otherwise the change is made again on what is stored now, so that two admins'
    /// changes never undo each other unseen. A tightening marks existing devices for
    /// re-verification.
    pub async fn change_policy(
        &self,
        caller: &Caller,
        change: impl Fn(&StoredPolicy) -> Result<Policy>,
    ) -> Result<StoredPolicy> {
        caller.require_settings_rights()?;
        let enterprise = &caller.enterprise_id;
        for _ in 0..POLICY_CHANGE_TRIES {
            let current = self.store.policy_for_change(enterprise).await?.unwrap_or_else(StoredPolicy::defaults);
            let new = change(&current)?.validated()?;
            let now = self.clock.now();
            let tightened = current.policy.is_tightened_by(&new);
            let stored = StoredPolicy {
                tightened_at: if tightened { now } else { current.tightened_at },
                // Strictly later than the one replaced, even within one millisecond: `updated_at`
                // is what a read-modify-write names as the version it read.
                updated_at: Timestamp(now.millis().max(current.updated_at.millis() + 1)),
                policy: new,
            };
            let audit = caller.entry(
                now,
                "policy.update",
                Some(enterprise.as_str()),
                json!({"from": current.policy, "to": stored.policy, "tightened": tightened}),
            );
            if self.store.put_policy(enterprise, &stored, current.updated_at, &audit).await? {
                return Ok(stored);
            }
        }
        Err(Error::Conflict("the policy is being changed by others at this moment; try again".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightening_is_recognised() {
        let base = Policy::default();
        assert!(base.is_tightened_by(&Policy { require_password: true, ..base.clone() }));
        assert!(base.is_tightened_by(&Policy { max_devices: 2, ..base.clone() }));
        assert!(base.is_tightened_by(&Policy { allowed_regions: Some(vec!["CN".into()]), ..base.clone() }));
        assert!(!base.is_tightened_by(&Policy { max_devices: 9, ..base.clone() }));
        assert!(!base.is_tightened_by(&Policy { reverify_after_days: 7, ..base.clone() }));
    }

    #[test]
    fn regions_are_checked_and_normalised() {
        let p = Policy { allowed_regions: Some(vec!["cn".into(), "CN".into(), "us".into()]), ..Policy::default() };
        assert_eq!(p.validated().unwrap().allowed_regions, Some(vec!["CN".to_string(), "US".to_string()]));
        assert!(Policy { allowed_regions: Some(vec!["XX".into()]), ..Policy::default() }.validated().is_err());
    }
}

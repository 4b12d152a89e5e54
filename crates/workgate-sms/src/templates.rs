//! Templates, for the gateways that send only approved templates filled with parameters (Tencent
//! Cloud SMS, Alibaba Cloud SMS): one template per kind of message and per region class of the
//! number, each with the list of the message's parameters it takes.
//!
//! ```toml
//! [sms.tencent.templates.mainland]          # numbers of mainland China (+86)
//! login_code    = { id = "2001001", params = ["code", "minutes"] }
//! invitation    = { id = "2001002", params = ["enterprise", "path", "days"] }
//! phone_changed = { id = "2001003", params = ["enterprise", "new_number"] }
//!
//! [sms.tencent.templates.international]     # every other number, Hong Kong, Macao and Taiwan included
//! login_code    = { id = "3001001", params = ["code", "minutes"] }
//! # …
//! ```
//!
//! The parameters each kind offers are [`SmsPurpose::params`]: `login_code` has `code` and
//! `minutes`; `invitation` has `enterprise`, `member`, `link`, `path` (the link after the public
//! URL, `i/wgi_…`) and `days`; `phone_changed` has `enterprise`, `member`, `old_number` and
//! `new_number` (both masked). At start, every region class that is configured must have a
//! template for every kind the server sends, and each named parameter must be one its kind
//! offers; otherwise the server does not start, and says which. A region class left out entirely
//! is not served: messages to its numbers fail at once with a reason that says so.

use serde::Deserialize;
use workgate_domain::outbox::SmsPurpose;
use workgate_domain::sms::{SendError, SmsMessage};

/// One approved template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The gateway's id of the template (Tencent `TemplateId`, Alibaba `TemplateCode`).
    pub id: String,
    /// The message's parameters the template takes: in its order for Tencent (`{1}`, `{2}`, …),
    /// by name for Alibaba (`${code}`).
    #[serde(default)]
    pub params: Vec<String>,
}

/// The templates of one region class, one per kind of message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindTemplates {
    #[serde(default)]
    pub login_code: Option<Template>,
    #[serde(default)]
    pub invitation: Option<Template>,
    #[serde(default)]
    pub phone_changed: Option<Template>,
}

impl KindTemplates {
    fn get(&self, kind: SmsPurpose) -> Option<&Template> {
        match kind {
            SmsPurpose::LoginCode => self.login_code.as_ref(),
            SmsPurpose::Invitation => self.invitation.as_ref(),
            SmsPurpose::PhoneChanged => self.phone_changed.as_ref(),
        }
    }
}

/// `[sms.<provider>.templates]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// For numbers of mainland China (+86).
    #[serde(default)]
    pub mainland: Option<KindTemplates>,
    /// For every other number (Hong Kong, Macao and Taiwan included, as the gateways count them).
    #[serde(default)]
    pub international: Option<KindTemplates>,
}

/// Where a number is, as the gateways price and approve templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionClass {
    Mainland,
    International,
}

impl RegionClass {
    /// The class of an E.164 number.
    pub fn of(to: &str) -> RegionClass {
        if to.starts_with("+86") { RegionClass::Mainland } else { RegionClass::International }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegionClass::Mainland => "mainland",
            RegionClass::International => "international",
        }
    }
}

/// A message filled into its template: the template's id and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled<'a> {
    pub template_id: &'a str,
    pub params: Vec<(&'a str, String)>,
}

/// The templates of a provider, checked at start.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    provider: &'static str,
    templates: Templates,
}

impl TemplateSet {
    /// Checks `templates` of `provider` (`tencent`, `alibaba`): at least one region class; in each
    /// configured class a template for every kind, with a non-empty id and only parameters its
    /// kind offers.
    pub fn new(provider: &'static str, templates: Templates) -> Result<TemplateSet, String> {
        let classes =
            [(RegionClass::Mainland, &templates.mainland), (RegionClass::International, &templates.international)];
        if classes.iter().all(|(_, kinds)| kinds.is_none()) {
            return Err(format!(
                "sms.{provider}.templates has no templates: configure [sms.{provider}.templates.mainland] \
                 and/or [sms.{provider}.templates.international] with login_code, invitation and phone_changed"
            ));
        }
        for (class, kinds) in classes {
            let Some(kinds) = kinds else { continue };
            for kind in SmsPurpose::ALL {
                let key = format!("sms.{provider}.templates.{}.{}", class.as_str(), kind.as_str());
                let template = kinds.get(kind).ok_or_else(|| {
                    format!(
                        "{key} is missing: the server sends {} messages, and {provider} sends only templates",
                        kind.as_str()
                    )
                })?;
                crate::http::required(&format!("{key}.id"), &template.id)?;
                for param in &template.params {
                    if !kind.params().contains(&param.as_str()) {
                        return Err(format!(
                            "{key}.params names '{param}', which {} messages do not have (they have {})",
                            kind.as_str(),
                            kind.params().join(", ")
                        ));
                    }
                }
            }
        }
        Ok(TemplateSet { provider, templates })
    }

    /// Whether the login-code template of any configured class takes the code.
    pub fn sends_codes(&self) -> bool {
        [&self.templates.mainland, &self.templates.international]
            .into_iter()
            .flatten()
            .filter_map(|kinds| kinds.login_code.as_ref())
            .any(|template| template.params.iter().any(|p| p == "code"))
    }

    /// The template and parameters for `message` to `to`. Fails for good when the message has no
    /// kind (queued as bare text by an older version) or the number's class has no templates.
    pub fn fill<'a>(&'a self, to: &str, message: &SmsMessage) -> Result<Filled<'a>, SendError> {
        let provider = self.provider;
        let content = message.content.as_ref().ok_or_else(|| {
            SendError::Permanent(format!(
                "{provider}: the message was queued as bare text by an earlier version, and {provider} sends only templates"
            ))
        })?;
        let class = RegionClass::of(to);
        let kinds = match class {
            RegionClass::Mainland => &self.templates.mainland,
            RegionClass::International => &self.templates.international,
        };
        let template = kinds.as_ref().and_then(|kinds| kinds.get(content.purpose())).ok_or_else(|| {
            SendError::Permanent(format!(
                "{provider}: no {} templates are configured (sms.{provider}.templates.{}), so {} numbers are not served",
                class.as_str(),
                class.as_str(),
                class.as_str()
            ))
        })?;
        let params = template
            .params
            .iter()
            .map(|name| {
                // Names were checked against the kind at start.
                let value = content.param(name).unwrap_or_default();
                (name.as_str(), value)
            })
            .collect();
        Ok(Filled { template_id: &template.id, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workgate_domain::sms::SmsContent;

    fn template(id: &str, params: &[&str]) -> Option<Template> {
        Some(Template { id: id.into(), params: params.iter().map(|p| p.to_string()).collect() })
    }

    fn all(prefix: &str) -> KindTemplates {
        KindTemplates {
            login_code: template(&format!("{prefix}1"), &["code", "minutes"]),
            invitation: template(&format!("{prefix}2"), &["enterprise", "path", "days"]),
            phone_changed: template(&format!("{prefix}3"), &["enterprise", "new_number"]),
        }
    }

    #[test]
    fn fills_by_kind_and_region_class() {
        let set = TemplateSet::new("tencent", Templates { mainland: Some(all("m")), international: Some(all("i")) })
            .expect("complete");
        let code = SmsMessage::new(SmsContent::LoginCode { code: "04219876".into(), minutes: 5 });
        let filled = set.fill("+8613800138000", &code).expect("mainland");
        assert_eq!(
            filled,
            Filled { template_id: "m1", params: vec![("code", "04219876".into()), ("minutes", "5".into())] }
        );
        assert_eq!(set.fill("+85291234567", &code).expect("hong kong").template_id, "i1");
        let invitation = SmsMessage::new(SmsContent::Invitation {
            enterprise: "Acme 123456".into(),
            member: "Li".into(),
            link: "https://x/i/wgi_a".into(),
            path: "i/wgi_a".into(),
            days: 7,
        });
        let filled = set.fill("+8613800138000", &invitation).expect("invitation");
        assert_eq!(filled.template_id, "m2");
        assert_eq!(
            filled.params,
            vec![("enterprise", "Acme 123456".into()), ("path", "i/wgi_a".into()), ("days", "7".into())]
        );
        assert!(set.sends_codes());
    }

    #[test]
    fn a_missing_kind_or_an_unknown_parameter_stops_the_start() {
        let mut kinds = all("m");
        kinds.phone_changed = None;
        let error = TemplateSet::new("tencent", Templates { mainland: Some(kinds), international: None }).unwrap_err();
        assert!(error.contains("sms.tencent.templates.mainland.phone_changed is missing"), "{error}");
        let mut kinds = all("m");
        kinds.invitation = template("m2", &["enterprise", "code"]);
        let error = TemplateSet::new("alibaba", Templates { mainland: None, international: Some(kinds) }).unwrap_err();
        assert!(error.contains("names 'code', which invitation messages do not have"), "{error}");
        assert!(TemplateSet::new("tencent", Templates::default()).unwrap_err().contains("has no templates"));
    }

    #[test]
    fn a_class_left_out_and_a_bare_text_fail_for_good() {
        let set = TemplateSet::new("tencent", Templates { mainland: Some(all("m")), international: None }).expect("ok");
        let code = SmsMessage::new(SmsContent::LoginCode { code: "123456".into(), minutes: 5 });
        assert!(matches!(set.fill("+14155550100", &code), Err(SendError::Permanent(m)) if m.contains("international")));
        let old = SmsMessage::from_stored("123456 is your code");
        assert!(matches!(set.fill("+8613800138000", &old), Err(SendError::Permanent(m)) if m.contains("bare text")));
    }
}

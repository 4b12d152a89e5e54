//! The JSON bodies of `login/start` and the admin API, decoded as the HTTP layer decodes them
//! (`workgate_http::extract::parse_json`), then put through the domain's validating steps that
//! need no database. The first byte picks the request type (`0` login/start, `1` a new member,
//! `2` a member patch, `3` a new department, `4` a department patch, `5` a new app, `6` an app
//! patch, `7` a policy, `8` a password, `9` a code or an enterprise choice, `:` an API key); the
//! rest is the body.
//!
//! Asserts:
//! - the HTTP decoder accepts exactly what plain `serde_json` accepts, and each refusal is one
//!   `validation_failed` error naming a field;
//! - `login/start`: an accepted number's E.164 form parses back to the same number;
//! - `POST /members` (`build_member`): every value of an accepted member parses back to itself,
//!   it belongs to at least one department of the tree, only a department admin has
//!   `admin_departments`; and patching the member with the values it was built from (what a
//!   second import of the same row does) changes nothing;
//! - `PATCH /members/{id}` (`apply_patch`): applying the same patch twice is the same as once;
//! - department names: an accepted name parses back to itself and has no `/`;
//! - `POST|PATCH /apps`: an accepted redirect URI still parses, without a fragment, once the
//!   authorization response's parameters are added to it;
//! - `PUT /policy` (`Policy::validated`): validating a validated policy changes nothing, and a
//!   policy does not tighten itself;
//! - passwords: NFKC normalisation is idempotent, and the strength check answers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use workgate_domain::Error;
use workgate_domain::clock::Timestamp;
use workgate_domain::directory::{
    DepartmentPatch, DepartmentTree, MemberPatch, NewDepartmentInput, NewMemberInput, apply_patch, build_member,
};
use workgate_domain::enterprises::CreateApiKey;
use workgate_domain::ids::{DepartmentId, DeviceId, EnterpriseId};
use workgate_domain::login::{CodeInput, EnterpriseChoice, PasswordInput, StartLoginInput};
use workgate_domain::model::{Department, Enterprise, Member};
use workgate_domain::oidc::apps::{CreateApp, UpdateApp, valid_redirect_uri};
use workgate_domain::oidc::flow::redirect_with;
use workgate_domain::phone::{PhoneNumber, Region};
use workgate_domain::policy::Policy;
use workgate_domain::values::{DepartmentName, Email, EnterpriseName, PersonName, Role, Title, UserId};
use workgate_http::problem::ApiError;

const ROOT: &str = "dep_00000000000000000000000000000001";
const SALES: &str = "dep_00000000000000000000000000000002";
const EAST: &str = "dep_00000000000000000000000000000003";

fn enterprise() -> Enterprise {
    Enterprise {
        id: EnterpriseId::from_trusted("ent_00000000000000000000000000000001".into()),
        name: EnterpriseName::parse("Fuzz Co").unwrap(),
        region: Region::parse("CN").unwrap(),
        created_at: Timestamp(1_700_000_000_000),
    }
}

fn tree(e: &Enterprise) -> DepartmentTree {
    let d = |id: &str, name: &str, parent: Option<&str>| Department {
        id: DepartmentId::parse(id).unwrap(),
        enterprise_id: e.id.clone(),
        name: DepartmentName::parse(name).unwrap(),
        parent_id: parent.map(|p| DepartmentId::parse(p).unwrap()),
        order: 0,
    };
    DepartmentTree::new(vec![d(ROOT, "Fuzz Co", None), d(SALES, "Sales", Some(ROOT)), d(EAST, "East", Some(SALES))])
}

fn member(e: &Enterprise, t: &DepartmentTree) -> Member {
    let input = NewMemberInput {
        name: "Li Lei".into(),
        phone: "13800138000".into(),
        userid: Some("lilei".into()),
        departments: Some(vec![SALES.into()]),
        ..Default::default()
    };
    build_member(e, t, &input, Timestamp(1_700_000_000_000)).unwrap()
}

/// Decodes as the HTTP layer does, checking it agrees with plain serde_json.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    let plain = serde_json::from_slice::<T>(body);
    match workgate_http::extract::parse_json::<T>(body) {
        Ok(v) => {
            assert!(plain.is_ok(), "the HTTP decoder accepts what serde_json refuses: {:?}", plain.err());
            Some(v)
        }
        Err(ApiError::Domain(Error::Validation(errors))) => {
            assert!(plain.is_err(), "the HTTP decoder refuses what serde_json accepts: {errors:?}");
            assert!(errors.len() == 1 && !errors[0].field.is_empty(), "{errors:?}");
            None
        }
        Err(other) => panic!("a body is refused as validation_failed, not {other:?}"),
    }
}

fn parses_back<T: PartialEq + std::fmt::Debug>(v: &T, s: &str, parse: impl Fn(&str) -> workgate_domain::Result<T>) {
    assert_eq!(parse(s).as_ref().ok(), Some(v), "{s:?} does not parse back to itself");
}

fn check_member(m: &Member, t: &DepartmentTree, region: Region) {
    parses_back(&m.name, m.name.as_str(), PersonName::parse);
    parses_back(&m.userid, m.userid.as_str(), UserId::parse);
    parses_back(&m.phone, m.phone.as_str(), |s| PhoneNumber::parse(s, region));
    if let Some(email) = &m.email {
        parses_back(email, email.as_str(), Email::parse);
    }
    if let Some(title) = &m.title {
        parses_back(title, title.as_str(), Title::parse);
    }
    assert!(!m.departments.is_empty());
    assert!(m.departments.iter().chain(&m.admin_departments).all(|d| t.get(d).is_some()));
    assert_eq!(m.role == Role::DepartmentAdmin, !m.admin_departments.is_empty(), "{m:?}");
}

fn department_name(name: &str) {
    if let Ok(n) = DepartmentName::parse(name) {
        assert!(!n.as_str().contains('/'));
        parses_back(&n, n.as_str(), DepartmentName::parse);
    }
}

fn redirect_uris(uris: &[String]) {
    for uri in uris.iter().filter(|u| valid_redirect_uri(u).is_ok()) {
        let answered = redirect_with(uri, &[("code", "c0de"), ("state", "s&t=a#e"), ("iss", "https://wg.example")]);
        let url = url::Url::parse(&answered).unwrap_or_else(|e| panic!("{answered:?} (from {uri:?}): {e}"));
        assert!(url.fragment().is_none(), "{answered:?}");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let tail: Vec<(&str, &str)> = pairs.iter().rev().take(3).rev().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(tail, [("code", "c0de"), ("state", "s&t=a#e"), ("iss", "https://wg.example")], "{answered:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [kind, body @ ..] = data else { return };
    let e = enterprise();
    let t = tree(&e);
    let now = Timestamp(1_700_000_100_000);
    match kind.wrapping_sub(b'0') % 11 {
        0 => {
            let Some(input) = decode::<StartLoginInput>(body) else { return };
            let region = match input.region.as_deref().map(Region::parse) {
                Some(Ok(r)) => r,
                Some(Err(_)) => return,
                None => e.region,
            };
            let _ = input.device_id.as_deref().map(DeviceId::parse);
            if let Ok(p) = PhoneNumber::parse(&input.phone, region) {
                parses_back(&p, p.as_str(), |s| PhoneNumber::parse(s, region));
            }
        }
        1 => {
            let Some(input) = decode::<NewMemberInput>(body) else { return };
            // As the import creates a member from a row (empty email and title mean none) ...
            let created = NewMemberInput {
                email: input.email.clone().filter(|s| !s.is_empty()),
                title: input.title.clone().filter(|s| !s.is_empty()),
                ..input.clone()
            };
            let Ok(m) = build_member(&e, &t, &created, now) else { return };
            check_member(&m, &t, e.region);
            // ... and as it patches the member a second import of the row finds.
            let patch = MemberPatch {
                name: Some(input.name.clone()),
                phone: Some(input.phone.clone()),
                userid: input.userid.clone(),
                email: input.email.clone().map(|s| Some(s).filter(|s| !s.is_empty())),
                title: input.title.clone().map(|s| Some(s).filter(|s| !s.is_empty())),
                departments: input.departments.clone().filter(|d| !d.is_empty()),
                role: input.role.clone(),
                admin_departments: input.admin_departments.clone(),
            };
            let again = apply_patch(&e, &t, &m, &patch, Timestamp(now.millis() + 1));
            assert_eq!(again.as_ref().ok(), Some(&m), "patching a member with its own values changed it: {again:?}");
        }
        2 => {
            let Some(patch) = decode::<MemberPatch>(body) else { return };
            let m = member(&e, &t);
            let Ok(once) = apply_patch(&e, &t, &m, &patch, now) else { return };
            check_member(&once, &t, e.region);
            let twice = apply_patch(&e, &t, &once, &patch, Timestamp(now.millis() + 1));
            assert_eq!(twice.as_ref().ok(), Some(&once), "a patch applied twice differs from once: {twice:?}");
        }
        3 => {
            let Some(input) = decode::<NewDepartmentInput>(body) else { return };
            department_name(&input.name);
            let _ = input.parent_id.as_deref().map(DepartmentId::parse);
        }
        4 => {
            let Some(patch) = decode::<DepartmentPatch>(body) else { return };
            if let Some(name) = &patch.name {
                department_name(name);
            }
        }
        5 => {
            let Some(input) = decode::<CreateApp>(body) else { return };
            redirect_uris(&input.redirect_uris);
            redirect_uris(&input.post_logout_redirect_uris);
        }
        6 => {
            let Some(input) = decode::<UpdateApp>(body) else { return };
            redirect_uris(input.redirect_uris.as_deref().unwrap_or_default());
        }
        7 => {
            let Some(policy) = decode::<Policy>(body) else { return };
            let Ok(valid) = policy.validated() else { return };
            let again = valid.clone().validated();
            assert_eq!(again.as_ref().ok(), Some(&valid), "validating a valid policy changed it: {again:?}");
            assert!(!valid.is_tightened_by(&valid));
        }
        8 => {
            let Some(input) = decode::<PasswordInput>(body) else { return };
            let Ok(p) = workgate_domain::passwords::normalise(&input.password) else { return };
            let again = workgate_domain::passwords::normalise(&p);
            assert_eq!(again.as_ref().ok(), Some(&p), "NFKC is not idempotent here");
            let _ = workgate_domain::passwords::check_strength(&p, &member(&e, &t));
        }
        9 => {
            let _ = decode::<CodeInput>(body);
            let _ = decode::<EnterpriseChoice>(body);
        }
        _ => {
            let _ = decode::<CreateApiKey>(body);
        }
    }
});

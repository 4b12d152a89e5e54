//! `workgate_domain::import::parse_json`, the JSON import file (`{"members": [...]}` with the
//! fields of `POST /members`).
//!
//! Asserts, for every file accepted: it is one JSON value; as an object, its `members` array has
//! exactly as many entries as there are records (at most `MAX_ROWS`); and the records written
//! back as JSON read back as the same records.
//!
//! (serde's derived structs also take the array form: `[[]]`, found by this target, is an accepted
//! file, and a member may be given as an array of its nine fields in order. Lenient, reported,
//! not asserted against.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use workgate_domain::import::{DepartmentRefs, ImportRecord, MAX_ROWS, parse_json};

fn to_json(r: &ImportRecord) -> Value {
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.to_string(), v);
        }
    };
    put("userid", r.userid.clone().map(Value::from));
    put("name", r.name.clone().map(Value::from));
    put("phone", r.phone.clone().map(Value::from));
    put("email", r.email.clone().map(Value::from));
    put("title", r.title.clone().map(Value::from));
    put(
        "departments",
        r.departments.as_ref().map(|d| match d {
            DepartmentRefs::Ids(ids) => json!(ids),
            DepartmentRefs::Paths(_) => panic!("a JSON file names departments by id"),
        }),
    );
    put("role", r.role.clone().map(Value::from));
    put("admin_departments", r.admin_departments.as_ref().map(|a| json!(a)));
    put("invite", r.invite.map(Value::from));
    Value::Object(o)
}

fuzz_target!(|data: &[u8]| {
    let Ok(records) = parse_json(data) else { return };
    assert!(records.len() <= MAX_ROWS);
    let value: Value = serde_json::from_slice(data).expect("an accepted import file is JSON");
    if value.is_object() {
        let members = value.get("members").and_then(Value::as_array).expect("an accepted file has a members array");
        assert_eq!(members.len(), records.len());
    }

    let written = json!({"members": records.iter().map(to_json).collect::<Vec<_>>()});
    let written = serde_json::to_vec(&written).unwrap();
    let again = parse_json(&written)
        .unwrap_or_else(|e| panic!("{} does not read back: {e}", String::from_utf8_lossy(&written)));
    let as_json = |rs: &[ImportRecord]| rs.iter().map(to_json).collect::<Vec<_>>();
    assert_eq!(as_json(&again), as_json(&records));
});

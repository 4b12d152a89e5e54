//! `workgate_domain::import::parse_csv`, the CSV import file (`POST /members/import`, the CLI's
//! `member import`).
//!
//! Asserts, for every file accepted: at most `MAX_ROWS` rows; no empty userid and no empty or
//! untrimmed department path is handed on; and the records written back as CSV (the columns the
//! file had) read back as the same records.

#![no_main]

use libfuzzer_sys::fuzz_target;
use workgate_domain::import::{DepartmentRefs, ImportRecord, MAX_ROWS, parse_csv};

/// A record as the import uses it: departments `Some(Paths([]))` and `None` mean the same (the
/// member's departments are left as they are, or the root for a new member).
fn comparable(r: &ImportRecord) -> [Option<String>; 6] {
    let departments = match &r.departments {
        Some(DepartmentRefs::Paths(p)) if !p.is_empty() => Some(p.join(";")),
        Some(DepartmentRefs::Paths(_)) | None => None,
        Some(DepartmentRefs::Ids(_)) => panic!("a CSV file names departments by path"),
    };
    [r.userid.clone(), r.name.clone(), r.phone.clone(), r.email.clone(), r.title.clone(), departments]
}

fuzz_target!(|data: &[u8]| {
    let Ok(records) = parse_csv(data) else { return };
    assert!(records.len() <= MAX_ROWS);
    for r in &records {
        assert!(r.userid.as_deref().is_none_or(|u| !u.is_empty()));
        if let Some(DepartmentRefs::Paths(paths)) = &r.departments {
            assert!(paths.iter().all(|p| !p.is_empty() && p.trim() == p && !p.contains(';')), "{paths:?}");
        }
        assert!(r.role.is_none() && r.admin_departments.is_none() && r.invite.is_none());
    }
    let Some(first) = records.first() else { return };

    // The columns the file had: name, phone, email and title are `Some` in every row when their
    // column is there; userid and departments are `None` for an empty cell, so a column of empty
    // cells reads the same as no column.
    let names = ["userid", "name", "phone", "email", "title", "departments"];
    let rows: Vec<[Option<String>; 6]> = records.iter().map(comparable).collect();
    let present: Vec<usize> =
        (0..6)
            .filter(|&i| {
                if (1..=4).contains(&i) { comparable(first)[i].is_some() } else { rows.iter().any(|r| r[i].is_some()) }
            })
            .collect();
    if present.is_empty() {
        return; // a file of empty cells in userid/departments columns only: nothing to write back
    }
    let mut writer = csv::Writer::from_writer(vec![]);
    writer.write_record(present.iter().map(|&i| names[i])).unwrap();
    for row in &rows {
        writer.write_record(present.iter().map(|&i| row[i].as_deref().unwrap_or(""))).unwrap();
    }
    let written = writer.into_inner().unwrap();
    let again = parse_csv(&written)
        .unwrap_or_else(|e| panic!("{:?} does not read back: {e}", String::from_utf8_lossy(&written)));
    let again: Vec<[Option<String>; 6]> = again.iter().map(comparable).collect();
    assert_eq!(again, rows, "written back as {:?}", String::from_utf8_lossy(&written));
});

//! Deterministic test data: names, mobile numbers, titles and department paths.

use workgate_domain::import::{DepartmentRefs, ImportRecord};

/// splitmix64: small, fast, deterministic; enough to spread names and departments.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub const SURNAMES: [&str; 24] = [
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo",
    "He", "Lin", "Gao", "Luo", "Zheng", "Liang", "Xie", "Song",
];

const GIVEN: [&str; 32] = [
    "Wei", "Fang", "Na", "Min", "Jing", "Xiu", "Qiang", "Lei", "Jun", "Yang", "Yong", "Yan", "Jie", "Juan", "Tao",
    "Ming", "Chao", "Xia", "Ping", "Gang", "Hui", "Hong", "Bo", "Lan", "Dan", "Kai", "Ning", "Rui", "Shan", "Ting",
    "Xin", "Yu",
];

const TITLES: [&str; 8] =
    ["Engineer", "Senior Engineer", "Manager", "Analyst", "Designer", "Sales Lead", "Accountant", "Operator"];

pub fn person_name(rng: &mut Rng) -> String {
    format!("{} {}{}", SURNAMES[rng.below(SURNAMES.len())], GIVEN[rng.below(GIVEN.len())], GIVEN[rng.below(8)])
}

pub fn title(rng: &mut Rng) -> String {
    TITLES[rng.below(TITLES.len())].to_string()
}

/// A valid Chinese mobile number `+86 1PP XXXX XXXX`, distinct for distinct `n` below 10^8.
pub fn mobile(prefix: u32, n: u64) -> String {
    // A bijection of 0..10^8 so that neighbouring rows do not get neighbouring numbers.
    let x = (n.wrapping_mul(39_916_801) + 12_345_678) % 100_000_000;
    format!("+86 {prefix} {:04} {:04}", x / 10_000, x % 10_000)
}

/// The shape of an org tree: `divisions` × `groups` × `teams`, named by position.
#[derive(Debug, Clone, Copy)]
pub struct Tree {
    pub divisions: usize,
    pub groups: usize,
    pub teams: usize,
}

impl Tree {
    pub fn leaves(&self) -> usize {
        self.divisions * self.groups * self.teams
    }

    pub fn departments(&self) -> usize {
        self.divisions * (1 + self.groups * (1 + self.teams))
    }

    /// The path of leaf `i`: `Division 03/Group 07/Team 2`.
    pub fn leaf_path(&self, i: usize) -> String {
        let team = i % self.teams;
        let group = (i / self.teams) % self.groups;
        let division = i / (self.teams * self.groups) % self.divisions;
        format!("{}/Group {:02}/Team {}", division_name(division), group + 1, team + 1)
    }
}

pub fn division_name(i: usize) -> String {
    format!("Division {:02}", i + 1)
}

/// One member row; every tenth member sits in two teams.
pub fn record(rng: &mut Rng, tree: &Tree, phone_prefix: u32, n: u64, userid: String) -> ImportRecord {
    let mut paths = vec![tree.leaf_path(rng.below(tree.leaves()))];
    if n.is_multiple_of(10) {
        paths.push(tree.leaf_path(rng.below(tree.leaves())));
    }
    ImportRecord {
        email: Some(format!("{userid}@example.com")),
        userid: Some(userid),
        name: Some(person_name(rng)),
        phone: Some(mobile(phone_prefix, n)),
        title: Some(title(rng)),
        departments: Some(DepartmentRefs::Paths(paths)),
        ..Default::default()
    }
}

/// The records as a CSV file with the header `userid,name,phone,email,title,departments`.
pub fn to_csv(records: &[ImportRecord]) -> Vec<u8> {
    let mut out = String::from("userid,name,phone,email,title,departments\n");
    for r in records {
        let departments = match &r.departments {
            Some(DepartmentRefs::Paths(p)) => p.join(";"),
            _ => String::new(),
        };
        let cell = |s: &Option<String>| s.clone().unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            cell(&r.userid),
            cell(&r.name),
            cell(&r.phone),
            cell(&r.email),
            cell(&r.title),
            departments
        ));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use workgate_domain::phone::{PhoneNumber, Region};

    #[test]
    fn generated_numbers_are_valid_and_distinct() {
        let region = Region::parse("CN").unwrap();
        let mut seen = std::collections::HashSet::new();
        for n in 0..2000 {
            let p = PhoneNumber::parse(&mobile(139, n), region).expect("a valid mobile number");
            assert!(seen.insert(p.as_str().to_string()));
        }
    }

    #[test]
    fn the_tree_names_its_leaves() {
        let tree = Tree { divisions: 2, groups: 3, teams: 4 };
        assert_eq!(tree.leaves(), 24);
        assert_eq!(tree.departments(), 2 * (1 + 3 * 5));
        assert_eq!(tree.leaf_path(0), "Division 01/Group 01/Team 1");
        assert_eq!(tree.leaf_path(23), "Division 02/Group 03/Team 4");
    }
}

//! The database settings that acknowledged writes rely on to survive a crash, checked once at
//! start (one function per database, over the values read back from the database), and the
//! operator's choice to start anyway.
//!
//! - SQLite: `journal_mode` is `wal` and `synchronous` is `FULL` (or `EXTRA`) on every connection
//!   the server opened: the writer, the checkpoint thread's, and a read connection. The server sets
//!   them itself; they are read back because SQLite does not refuse what it cannot do (a
//!   filesystem without the shared memory WAL needs leaves the journal in its old mode, silently).
//! - PostgreSQL: `fsync`, `full_page_writes` on, and `synchronous_commit` anything but `off`
//!   (`local`, `remote_write` and `remote_apply` flush the commit to the server's own disk before
//!   acknowledging it, as `on` does; they differ only in what they wait for from standbys).

use std::fmt;

/// Whether the server may start on settings that can lose acknowledged writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Refuse ([`crate::OpenError::UnsafeDurability`]): the default.
    #[default]
    Required,
    /// Start anyway, with a warning: the operator's `accept_unsafe_durability` setting.
    AcceptUnsafe,
}

/// Settings of the database under which an acknowledged write may not survive a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeDurability {
    /// `SQLite` or `PostgreSQL`.
    pub database: &'static str,
    /// At least one.
    pub findings: Vec<Finding>,
}

/// One setting with a value that can lose acknowledged writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The setting as the database names it (`journal_mode`, `synchronous_commit`, …).
    pub setting: &'static str,
    /// The value read back.
    pub value: String,
    /// Where it was read, for SQLite (`the writer connection`, …); empty for PostgreSQL, whose
    /// connections share their settings.
    pub connections: Vec<&'static str>,
    /// The value or values that are safe.
    pub expected: &'static str,
    /// What the value risks, and what to do about it.
    pub advice: &'static str,
}

impl fmt::Display for UnsafeDurability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the database could lose acknowledged writes in a crash: ")?;
        for (i, finding) in self.findings.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{} {} is '{}'", self.database, finding.setting, finding.value)?;
            if !finding.connections.is_empty() {
                write!(f, " on {}", finding.connections.join(", "))?;
            }
            write!(f, ", expected {}: {}", finding.expected, finding.advice)?;
        }
        Ok(())
    }
}

impl std::error::Error for UnsafeDurability {}

/// The values read back from one SQLite connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// `PRAGMA journal_mode`, as SQLite spells it (lower case: `wal`, `delete`, `memory`, …).
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 0 `OFF`, 1 `NORMAL`, 2 `FULL`, 3 `EXTRA`.
    pub synchronous: i64,
}

/// Checks the settings read back from SQLite connections (named by where they serve).
pub fn check_sqlite(read: &[(&'static str, SqliteSettings)]) -> Result<(), UnsafeDurability> {
    let mut findings: Vec<Finding> = Vec::new();
    let mut note = |setting: &'static str, value: String, connection: &'static str, expected, advice| match findings
        .iter_mut()
        .find(|f| f.setting == setting && f.value == value)
    {
        Some(f) => f.connections.push(connection),
        None => findings.push(Finding { setting, value, connections: vec![connection], expected, advice }),
    };
    for (connection, settings) in read {
        if !settings.journal_mode.eq_ignore_ascii_case("wal") {
            note(
                "journal_mode",
                settings.journal_mode.to_ascii_lowercase(),
                connection,
                "'wal'",
                "the server asks for WAL, and SQLite keeps another journal mode when the database's filesystem \
                 cannot do WAL (network filesystems, some container volumes); put the database on a local disk",
            );
        }
        if settings.synchronous < 2 {
            let value = match settings.synchronous {
                0 => "OFF".to_string(),
                1 => "NORMAL".to_string(),
                n => n.to_string(),
            };
            note(
                "synchronous",
                value,
                connection,
                "'FULL'",
                "a commit is acknowledged before it is on disk; the server sets synchronous=FULL itself, so this \
                 build of SQLite ignored it: report it",
            );
        }
    }
    if findings.is_empty() { Ok(()) } else { Err(UnsafeDurability { database: "SQLite", findings }) }
}

/// The values of `SHOW fsync`, `SHOW synchronous_commit` and `SHOW full_page_writes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    pub fsync: String,
    pub synchronous_commit: String,
    pub full_page_writes: String,
}

/// Checks the settings read from a PostgreSQL connection.
pub fn check_postgres(read: &PostgresSettings) -> Result<(), UnsafeDurability> {
    let mut findings = Vec::new();
    let mut check = |setting: &'static str, value: &str, expected, advice| {
        if value.eq_ignore_ascii_case("off") {
            findings.push(Finding { setting, value: value.to_string(), connections: vec![], expected, advice });
        }
    };
    check(
        "fsync",
        &read.fsync,
        "'on'",
        "PostgreSQL does not flush its writes to disk, so a crash of its machine can lose acknowledged writes \
         and corrupt the database; set fsync = on in postgresql.conf and reload PostgreSQL",
    );
    check(
        "synchronous_commit",
        &read.synchronous_commit,
        "'on' (or 'local', 'remote_write', 'remote_apply')",
        "commits are acknowledged before they are on disk, so a crash of PostgreSQL loses the last ones; set \
         synchronous_commit = on in postgresql.conf and remove any override for Workgate's connections \
         (ALTER ROLE … RESET synchronous_commit, ALTER DATABASE … RESET synchronous_commit, or an options \
         parameter in the database URL)",
    );
    check(
        "full_page_writes",
        &read.full_page_writes,
        "'on'",
        "a crash in the middle of writing a page can leave it torn and the database unrecoverable; set \
         full_page_writes = on in postgresql.conf and reload PostgreSQL (if its filesystem cannot tear pages, \
         as ZFS, accept it instead)",
    );
    if findings.is_empty() { Ok(()) } else { Err(UnsafeDurability { database: "PostgreSQL", findings }) }
}

/// What the server does with a check's outcome: refuses, or, if the operator accepted it, warns
/// loudly and goes on.
pub fn enforce(checked: Result<(), UnsafeDurability>, durability: Durability) -> Result<(), UnsafeDurability> {
    match (checked, durability) {
        (Ok(()), _) => Ok(()),
        (Err(unsafe_settings), Durability::Required) => Err(unsafe_settings),
        (Err(unsafe_settings), Durability::AcceptUnsafe) => {
            tracing::warn!(
                "UNSAFE DURABILITY ACCEPTED (accept_unsafe_durability is set): {unsafe_settings}. Starting anyway: \
                 a crash may lose writes that were acknowledged"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lite(journal_mode: &str, synchronous: i64) -> SqliteSettings {
        SqliteSettings { journal_mode: journal_mode.into(), synchronous }
    }

    fn pg(fsync: &str, synchronous_commit: &str, full_page_writes: &str) -> PostgresSettings {
        PostgresSettings {
            fsync: fsync.into(),
            synchronous_commit: synchronous_commit.into(),
            full_page_writes: full_page_writes.into(),
        }
    }

    #[test]
    fn sqlite_in_wal_with_full_or_extra_synchronous_is_safe() {
        let read = [("the writer connection", lite("wal", 2)), ("a read connection", lite("WAL", 3))];
        assert_eq!(check_sqlite(&read), Ok(()));
    }

    #[test]
    fn sqlite_without_wal_is_refused_naming_the_setting_the_value_and_the_connections() {
        let read = [
            ("the writer connection", lite("delete", 2)),
            ("the checkpoint connection", lite("delete", 2)),
            ("a read connection", lite("wal", 2)),
        ];
        let refused = check_sqlite(&read).expect_err("refused");
        assert_eq!(refused.findings.len(), 1);
        assert_eq!(refused.findings[0].connections, ["the writer connection", "the checkpoint connection"]);
        let message = refused.to_string();
        assert!(
            message.starts_with(
                "the database could lose acknowledged writes in a crash: SQLite journal_mode is 'delete' on the \
                 writer connection, the checkpoint connection, expected 'wal': "
            ),
            "{message}"
        );
        assert!(message.contains("put the database on a local disk"), "{message}");
    }

    #[test]
    fn sqlite_with_synchronous_below_full_is_refused() {
        for (value, name) in [(0, "OFF"), (1, "NORMAL")] {
            let refused = check_sqlite(&[("the writer connection", lite("wal", value))]).expect_err("refused");
            assert_eq!(refused.findings.len(), 1);
            assert_eq!(refused.findings[0].setting, "synchronous");
            assert_eq!(refused.findings[0].value, name);
            assert!(refused.to_string().contains(&format!("SQLite synchronous is '{name}'")), "{refused}");
        }
        let both = check_sqlite(&[("the writer connection", lite("memory", 0))]).expect_err("refused");
        assert_eq!(both.findings.iter().map(|f| f.setting).collect::<Vec<_>>(), ["journal_mode", "synchronous"]);
    }

    #[test]
    fn postgres_defaults_and_local_synchronous_commit_are_safe() {
        for synchronous_commit in ["on", "local", "remote_write", "remote_apply"] {
            assert_eq!(check_postgres(&pg("on", synchronous_commit, "on")), Ok(()), "{synchronous_commit}");
        }
    }

    #[test]
    fn postgres_refuses_each_setting_that_is_off() {
        for (read, setting) in [
            (pg("off", "on", "on"), "fsync"),
            (pg("on", "off", "on"), "synchronous_commit"),
            (pg("on", "on", "off"), "full_page_writes"),
        ] {
            let refused = check_postgres(&read).expect_err("refused");
            assert_eq!(refused.database, "PostgreSQL");
            assert_eq!(refused.findings.iter().map(|f| f.setting).collect::<Vec<_>>(), [setting]);
            let message = refused.to_string();
            assert!(message.contains(&format!("PostgreSQL {setting} is 'off', expected ")), "{message}");
            assert!(message.contains(&format!("{setting} = on in postgresql.conf")), "{message}");
        }
        let all = check_postgres(&pg("off", "off", "off")).expect_err("refused");
        assert_eq!(all.findings.len(), 3);
        assert_eq!(all.to_string().matches("; PostgreSQL ").count(), 2);
    }

    #[test]
    fn the_refusal_stands_unless_the_operator_accepts_it() {
        let unsafe_lite = || check_sqlite(&[("the writer connection", lite("delete", 2))]);
        let unsafe_pg = || check_postgres(&pg("on", "off", "on"));
        assert!(enforce(unsafe_lite(), Durability::Required).is_err());
        assert!(enforce(unsafe_pg(), Durability::Required).is_err());
        assert_eq!(enforce(unsafe_lite(), Durability::AcceptUnsafe), Ok(()));
        assert_eq!(enforce(unsafe_pg(), Durability::AcceptUnsafe), Ok(()));
        assert_eq!(enforce(Ok(()), Durability::Required), Ok(()));
        assert_eq!(Durability::default(), Durability::Required);
    }
}

//! Turns database errors into domain errors. Constraint names and messages are matched here and
//! only here; no SQL text ever reaches a person.

use workgate_domain::Error;

pub(crate) fn from_sqlx(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
        if db.is_unique_violation() {
            return Error::Conflict(unique_violation(&text));
        }
        if db.is_foreign_key_violation() {
            return foreign_key_violation();
        }
    }
    tracing::error!(error = %e, "database error");
    Error::Internal(e.to_string())
}

/// The same for SQLite's errors (the store runs SQLite through `rusqlite`).
pub(crate) fn from_sqlite(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(failure, message) = &e {
        let text = message.as_deref().unwrap_or_default();
        match failure.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return Error::Conflict(unique_violation(text));
            }
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return foreign_key_violation(),
            _ => {}
        }
    }
    tracing::error!(error = %e, "database error");
    Error::Internal(e.to_string())
}

pub(crate) trait SqliteResultExt<T> {
    fn lite(self) -> Result<T, Error>;
}

impl<T> SqliteResultExt<T> for Result<T, rusqlite::Error> {
    fn lite(self) -> Result<T, Error> {
        self.map_err(from_sqlite)
    }
}

pub(crate) trait SqlxResultExt<T> {
    fn db(self) -> Result<T, Error>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, Error> {
        self.map_err(from_sqlx)
    }
}

/// The sentence for a unique violation, from the constraint's name or the database's message.
fn unique_violation(text: &str) -> String {
    if text.contains("phone") {
        "another member of this enterprise already has this phone number".into()
    } else if text.contains("userid") {
        "another member of this enterprise already has this userid".into()
    } else if text.contains("departments") {
        "a department with this name already exists under the same parent".into()
    } else {
        "a record with the same identity already exists".into()
    }
}

fn foreign_key_violation() -> Error {
    Error::Conflict("a department referred to was changed or deleted meanwhile; reload and try again".into())
}

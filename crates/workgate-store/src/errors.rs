//! Turns database errors into domain errors. Constraint names and messages are matched here and
//! only here; no SQL text ever reaches a person.

use workgate_domain::Error;

pub(crate) fn from_sqlx(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
        if db.is_unique_violation() {
            return Error::Conflict(if text.contains("phone") {
                "another member of this enterprise already has this phone number".into()
            } else if text.contains("userid") {
                "another member of this enterprise already has this userid".into()
            } else if text.contains("departments") {
                "a department with this name already exists under the same parent".into()
            } else {
                "a record with the same identity already exists".into()
            });
        }
        if db.is_foreign_key_violation() {
            return Error::Conflict(
                "a department referred to was changed or deleted meanwhile; reload and try again".into(),
            );
        }
    }
    tracing::error!(error = %e, "database error");
    Error::Internal(e.to_string())
}

pub(crate) trait SqlxResultExt<T> {
    fn db(self) -> Result<T, Error>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, Error> {
        self.map_err(from_sqlx)
    }
}

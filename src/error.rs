//! The one error type of the service, at the bottom of the layers: storage, use cases and
//! handlers all return it. Its HTTP mapping (status, JSON body) lives in `web::error`.
//!
//! Every use case and handler returns `Result<_, AppError>`. Each variant has a stable snake_case `code`
//! and an HTTP status; the body is always
//! `{"error": {"code": "...", "message": "...", "fields": {...}}}`. 5xx bodies are generic and
//! the cause goes to the log. Storage errors convert with `?`: a missing row is 404, a unique
//! violation 409, an exhausted or unreachable pool 503.

use std::collections::BTreeMap;

/// Messages per input field, e.g. `{"email": ["is not a valid email address"]}`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed request: unparsable JSON, a bad query string or path.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid input, with messages per field.
    #[error("{message}")]
    Validation {
        message: String,
        fields: FieldErrors,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests, retry later")]
    TooManyRequests,
    #[error("the service is temporarily unavailable, retry later")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_string(), vec![message.into()]);
        AppError::Validation {
            message: "the request has invalid fields".into(),
            fields,
        }
    }

    pub fn fields(fields: FieldErrors) -> Self {
        AppError::Validation {
            message: "the request has invalid fields".into(),
            fields,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Validation { .. } => "validation_failed",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict { code, .. } => code,
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::TooManyRequests => "rate_limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

/// The database aborted a transaction because it collided with another one (a deadlock or a
/// serialization failure): running it again may well succeed.
#[derive(Debug, thiserror::Error)]
#[error("transaction aborted by a concurrent one: {0}")]
pub struct TransactionConflict(pub String);

/// The connection died under a statement (the server went away, as in a failover), or it
/// turned out to reach a server that can no longer write (a primary demoted to standby).
/// Another connection, to whichever server is the primary now, may well succeed.
#[derive(Debug, thiserror::Error)]
#[error("database connection lost: {0}")]
pub struct ConnectionLost(pub String);

impl AppError {
    /// Whether this is a [`TransactionConflict`], worth running the transaction again.
    pub fn is_transaction_conflict(&self) -> bool {
        matches!(self, AppError::Unavailable(e) if e.downcast_ref::<TransactionConflict>().is_some())
    }

    /// Whether this is a [`ConnectionLost`], worth running again on a fresh connection.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, AppError::Unavailable(e) if e.downcast_ref::<ConnectionLost>().is_some())
    }
}

/// Whether a PostgreSQL error message says the connection is gone.
fn is_connection_gone(message: &str) -> bool {
    [
        "server closed the connection unexpectedly",
        "terminating connection",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "connection to server was lost",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound("resource"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                AppError::conflict("conflict", format!("already exists ({})", info.message()))
            }
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, ref info) => {
                AppError::Unavailable(TransactionConflict(info.message().to_string()).into())
            }
            // PostgreSQL's 40P01, which diesel does not name.
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().starts_with("deadlock detected") =>
            {
                AppError::Unavailable(TransactionConflict(info.message().to_string()).into())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                AppError::Unavailable(ConnectionLost(format!("connection closed: {e}")).into())
            }
            // libpq's words for a connection that died before diesel saw its status change.
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if is_connection_gone(info.message()) =>
            {
                AppError::Unavailable(ConnectionLost(format!("connection closed: {e}")).into())
            }
            // A COMMIT (or ROLLBACK) that failed because the connection died: whether the
            // commit went through is unknown, and the connection is unusable.
            Error::RollbackErrorOnCommit { .. } | Error::BrokenTransactionManager => {
                AppError::Unavailable(ConnectionLost(format!("transaction cut off: {e}")).into())
            }
            // A connection to a primary that has since been demoted (failover).
            Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
                AppError::Unavailable(ConnectionLost(format!("server is read-only: {e}")).into())
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("database is locked") =>
            {
                AppError::Unavailable(anyhow::anyhow!("{e}"))
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        AppError::Unavailable(anyhow::anyhow!("database pool: {e}"))
    }
}

impl From<validator::ValidationErrors> for AppError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut fields = FieldErrors::new();
        collect_validation(&errors, "", &mut fields);
        AppError::fields(fields)
    }
}

fn collect_validation(errors: &validator::ValidationErrors, prefix: &str, out: &mut FieldErrors) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                let messages = out.entry(path).or_default();
                for err in list {
                    messages.push(
                        err.message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| describe(err)),
                    );
                }
            }
            ValidationErrorsKind::Struct(inner) => collect_validation(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect_validation(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

fn describe(err: &validator::ValidationError) -> String {
    let param = |name: &str| err.params.get(name).map(|v| v.to_string());
    match err.code.as_ref() {
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be {min} to {max} characters long"),
            (Some(min), None) => format!("must be at least {min} characters long"),
            (None, Some(max)) => format!("must be at most {max} characters long"),
            _ => "has an invalid length".into(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be from {min} to {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".into(),
        },
        "email" => "is not a valid email address".into(),
        "url" => "is not a valid URL".into(),
        other => format!("is invalid ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::Error;

    #[test]
    fn a_connection_cut_off_under_a_transaction_is_worth_a_new_connection() {
        for e in [
            Error::BrokenTransactionManager,
            Error::RollbackErrorOnCommit {
                rollback_error: Box::new(Error::BrokenTransactionManager),
                commit_error: Box::new(Error::BrokenTransactionManager),
            },
        ] {
            let app = AppError::from(e);
            assert!(app.is_connection_lost(), "{app:?}");
            assert_eq!(app.code(), "unavailable");
        }
        assert!(is_connection_gone(
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally"
        ));
        assert!(!is_connection_gone(
            "duplicate key value violates unique constraint"
        ));
        assert!(!AppError::from(Error::NotFound).is_connection_lost());
    }
}

//! Errors of the server, and the one mapping from layer failures to HTTP statuses.

use hyper::StatusCode;

/// A failure inside the server, with the status it answers.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A record that does not exist or that the requester may not see: the same answer, so there is no existence oracle.
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such record")
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, invalid or expired session",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

/// The one place where layer errors become HTTP statuses.
impl From<tessera_store::Error> for ApiError {
    fn from(error: tessera_store::Error) -> Self {
        match error {
            tessera_store::Error::Conflict { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            tessera_store::Error::NotFound(_) => Self::not_found(),
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::internal()
            }
        }
    }
}

impl From<tessera_sharing::Error> for ApiError {
    fn from(error: tessera_sharing::Error) -> Self {
        match error {
            tessera_sharing::Error::Rule(rule) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rule_violation",
                rule.to_string(),
            ),
            tessera_sharing::Error::Crypto => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_signature",
                "verification failed",
            ),
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<tessera_keys::Error> for ApiError {
    fn from(error: tessera_keys::Error) -> Self {
        match error {
            tessera_keys::Error::Crypto => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_signature",
                "verification failed",
            ),
            other => Self::bad_request(other.to_string()),
        }
    }
}

//! Errors of the server: the one mapping from layer failures to wire error codes, and from codes to HTTP statuses.

use hyper::StatusCode;
use tessera_wire::ErrorCode;

/// A failure inside the server: the code it answers (which gives the status) and a message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of the answer: the one [`ErrorCode::status`] documents for the code.
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A record that does not exist or that the requester may not see: the same answer, so there is no existence oracle.
    pub(crate) fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such record")
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing, invalid or expired session",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
}

/// The one place where layer errors become HTTP statuses.
impl From<tessera_store::Error> for ApiError {
    fn from(error: tessera_store::Error) -> Self {
        match error {
            tessera_store::Error::Conflict { .. } => {
                Self::new(ErrorCode::Conflict, error.to_string())
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
            tessera_sharing::Error::Rule(rule) => {
                Self::new(ErrorCode::RuleViolation, rule.to_string())
            }
            tessera_sharing::Error::Crypto => {
                Self::new(ErrorCode::InvalidSignature, "verification failed")
            }
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<tessera_keys::Error> for ApiError {
    fn from(error: tessera_keys::Error) -> Self {
        match error {
            tessera_keys::Error::Crypto => {
                Self::new(ErrorCode::InvalidSignature, "verification failed")
            }
            other => Self::bad_request(other.to_string()),
        }
    }
}

//! Errors of the transport layer, and the one mapping from failures to HTTP statuses.

use hyper::StatusCode;

/// What the client reports. Statuses from the server keep their machine-readable code and message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error("server answered {status}: {code}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The stable error code of the body.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The request could not be sent or the answer not received.
    #[error("transport failed: {0}")]
    Transport(String),
    /// The answer did not decode.
    #[error("malformed answer: {0}")]
    Decode(String),
    /// The request could not be built (an invalid URL, an unencodable body).
    #[error("invalid request: {0}")]
    Request(String),
}

impl Error {
    /// The HTTP status, if the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server said the record does not exist or is not visible to this owner.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the server refused a stale revision.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Whether the session is missing, forged or expired.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }
}

/// Shorthand for results of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

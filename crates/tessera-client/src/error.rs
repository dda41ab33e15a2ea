//! Errors of the client: a status the server answered (with its machine-readable code), or a transport failure.

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

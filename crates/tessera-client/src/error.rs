//! Errors of the client: a status the server answered (with its machine-readable code), or a transport failure.
//! No hyper type appears in them: failures below HTTP are kept as messages.

use tessera_wire::ErrorCode;

/// What the client reports. Statuses from the server keep their machine-readable code and message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error("server answered {status}: {code}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The stable error code of the body ([`ErrorCode::Unknown`] if the answer had no Tessera error body).
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The request could not be sent or the answer not received.
    #[error("transport failed: {0}")]
    Transport(String),
    /// The answer's body is larger than the client reads ([`Client::with_max_answer_bytes`](crate::Client::with_max_answer_bytes),
    /// or a smaller cap for answers of a known small size); it was not read.
    #[error(
        "the server's answer exceeds {limit} bytes; it was not read. If the server is trusted to send more, \
         raise the limit with Client::with_max_answer_bytes"
    )]
    AnswerTooLarge {
        /// The limit it exceeds.
        limit: usize,
    },
    /// The answer did not decode.
    #[error("malformed answer: {0}")]
    Decode(String),
    /// The request could not be built (an invalid URL, an unencodable body).
    #[error("invalid request: {0}")]
    Request(String),
}

impl Error {
    /// A request to `base` that could not be sent or answered: the error and every source under it (hyper's own
    /// message, "client error (Connect)", says nothing without them), and the server's URL.
    pub(crate) fn transport(base: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = format!("cannot reach the server at {base}: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport(message)
    }

    /// A request to `base` that could not be built: a base URL that is not a server URL (without a scheme, say)
    /// is the usual cause, and is named as [`tessera_wire::server_name`] explains it.
    pub(crate) fn request(base: &str, error: &dyn std::fmt::Display) -> Self {
        match tessera_wire::server_name(base) {
            Err(message) => Self::Request(message),
            Ok(_) => Self::Request(format!("cannot build a request to {base}: {error}")),
        }
    }

    /// The HTTP status, if the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code, if the server answered with an error status.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the server said the record does not exist or is not visible to this owner (or that there is no
    /// such route).
    pub fn is_not_found(&self) -> bool {
        self.is(&[ErrorCode::NotFound, ErrorCode::NoRoute], 404)
    }

    /// Whether the server refused a stale revision, an existing id, or a second upload of one attachment.
    pub fn is_conflict(&self) -> bool {
        self.is(&[ErrorCode::Conflict, ErrorCode::UploadInProgress], 409)
    }

    /// Whether the session is missing, forged or expired.
    pub fn is_unauthorized(&self) -> bool {
        self.is(&[ErrorCode::Unauthorized], 401)
    }

    /// Whether the code is one of `codes`; for an answer without a Tessera error body (a proxy's, say), whether
    /// the status is `status`, the one those codes have.
    fn is(&self, codes: &[ErrorCode], status: u16) -> bool {
        match self {
            Self::Status {
                code: ErrorCode::Unknown,
                status: answered,
                ..
            } => *answered == status,
            Self::Status { code, .. } => codes.contains(code),
            _ => false,
        }
    }
}

/// Shorthand for results of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

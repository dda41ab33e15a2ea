//! The one error type of the SDK: a kind to branch on, a message, and the layer error as its source.

use std::fmt;

/// What kind of failure an [`Error`] is. Branch on this (or on the `is_*` methods), never on the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The record does not exist, or this owner may not see it (the server gives both the same answer).
    NotFound,
    /// The revision named by a write is no longer the stored one: read again, then retry.
    Conflict,
    /// The login failed, or the session is missing or expired.
    Unauthorized,
    /// The server refused the operation for this owner (for example a write through a read-only delegation).
    Forbidden,
    /// This owner holds no delegation of the entity that it can open (principle P4).
    NoAccess,
    /// The trust policy refused a partner's key bundle.
    Untrusted,
    /// Decryption or verification failed. Deliberately says nothing more.
    Crypto,
    /// A sharing rule was broken (DESIGN.md §6); nothing was changed.
    Rule,
    /// Input was malformed or out of range (a document that is not a JSON object, a bad manifest, a bad key file).
    Invalid,
    /// The server could not be reached, or answered something that does not decode.
    Transport,
    /// The server failed (an HTTP 5xx).
    Server,
    /// Something failed that the caller cannot fix (the operating system's random generator, an RSA operation).
    Internal,
    /// The server returned an older version of a record (or of this owner's state) than one this owner has already
    /// seen: it is rolling data back. Nothing was changed; do not write over it, and report it.
    Rollback,
    /// The server is refusing requests for a while (an HTTP 429, or a 503 `busy`: too many logins in progress,
    /// too many connections or unauthenticated bodies at once): wait a moment and retry.
    Busy,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NoAccess => "no accessible delegation",
            Self::Untrusted => "untrusted key bundle",
            Self::Crypto => "decryption or verification failed",
            Self::Rule => "sharing rule violated",
            Self::Invalid => "invalid input",
            Self::Transport => "transport failure",
            Self::Server => "server error",
            Self::Internal => "internal error",
            Self::Rollback => "the server returned an older version than one already seen",
            Self::Busy => "the server is busy",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the SDK.
///
/// Opaque on purpose: [`Error::kind`] and the `is_*` methods are the stable interface; the message is for humans
/// and the [`source`](std::error::Error::source) chain names the layer that failed. No HTTP, I/O or database type
/// appears in it. Messages never contain key bytes or plaintext.
pub struct Error {
    kind: ErrorKind,
    detail: Option<String>,
    source: Option<Source>,
}

impl Error {
    /// An error of `kind` with a human explanation.
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: Some(detail.into()),
            source: None,
        }
    }

    fn from_source(kind: ErrorKind, source: impl Into<Source>) -> Self {
        Self {
            kind,
            detail: None,
            source: Some(source.into()),
        }
    }

    /// Shorthand for an [`ErrorKind::Invalid`] error.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, detail)
    }

    /// The SDK error inside an I/O error, if there is one: every error an
    /// [`AttachmentStream`](crate::AttachmentStream) read returns carries one, for example of kind
    /// [`ErrorKind::Crypto`] when the stream does not open.
    ///
    /// ```
    /// # fn check(error: std::io::Error) {
    /// if tessera::Error::in_io_error(&error).is_some_and(tessera::Error::is_crypto) {
    ///     eprintln!("the attachment was tampered with");
    /// }
    /// # }
    /// ```
    pub fn in_io_error(error: &std::io::Error) -> Option<&Self> {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Self>())
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the record does not exist or is not visible to this owner.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether a write named a stale revision.
    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    /// Whether the login failed or the session is missing or expired.
    pub fn is_unauthorized(&self) -> bool {
        self.kind == ErrorKind::Unauthorized
    }

    /// Whether the server refused the operation for this owner.
    pub fn is_forbidden(&self) -> bool {
        self.kind == ErrorKind::Forbidden
    }

    /// Whether this owner holds no delegation of the entity that it can open.
    pub fn is_no_access(&self) -> bool {
        self.kind == ErrorKind::NoAccess
    }

    /// Whether the trust policy refused a key bundle.
    pub fn is_untrusted(&self) -> bool {
        self.kind == ErrorKind::Untrusted
    }

    /// Whether decryption or verification failed.
    pub fn is_crypto(&self) -> bool {
        self.kind == ErrorKind::Crypto
    }

    /// Whether a sharing rule was broken.
    pub fn is_rule(&self) -> bool {
        self.kind == ErrorKind::Rule
    }

    /// Whether the input was malformed.
    pub fn is_invalid(&self) -> bool {
        self.kind == ErrorKind::Invalid
    }

    /// Whether the server could not be reached or answered something that does not decode.
    pub fn is_transport(&self) -> bool {
        self.kind == ErrorKind::Transport
    }

    /// Whether the server failed.
    pub fn is_server(&self) -> bool {
        self.kind == ErrorKind::Server
    }

    /// Whether the server is refusing requests for a while (retry later).
    pub fn is_busy(&self) -> bool {
        self.kind == ErrorKind::Busy
    }

    /// Whether something failed that the caller cannot fix (the operating system's random generator, an RSA
    /// operation).
    pub fn is_internal(&self) -> bool {
        self.kind == ErrorKind::Internal
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{}: {detail}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.kind);
        if let Some(detail) = &self.detail {
            debug.field("detail", detail);
        }
        if let Some(source) = &self.source {
            debug.field("source", &source.to_string());
        }
        debug.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Shorthand for results of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The SDK error for a failure of the HTTP client: a kind from the code (or, without a Tessera error body, the
    /// status) the server answered, a message with the server's words and what to do, and the client's error as
    /// the source (a boxed `dyn Error`, so that no transport type is part of this crate's API).
    /// Deliberately not a public `From` impl, for the same reason.
    pub(crate) fn from_client(error: tessera_client::Error) -> Self {
        let kind = client_kind(&error);
        Self {
            kind,
            detail: Some(client_detail(kind, &error)),
            source: Some(Box::new(error)),
        }
    }

    /// For a failure to fetch `owner`'s public record: a not-found says that no such owner is registered.
    pub(crate) fn for_owner(self, owner: tessera_keys::OwnerId) -> Self {
        if self.is_not_found() {
            self.explained(format!(
                "owner {owner} is not registered on this server; check the owner id (nothing was shared)"
            ))
        } else {
            self
        }
    }

    /// This error with `detail` as its message instead, keeping its kind and source: for an operation that knows
    /// better than the server what a failure means (a refused administrator token, an owner that does not exist).
    pub(crate) fn explained(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// The kind of a client error: by the wire code the server answered, by status for an answer without a Tessera
/// error body (a proxy's) or with a code newer than this crate.
fn client_kind(error: &tessera_client::Error) -> ErrorKind {
    use tessera_wire::ErrorCode as C;
    match error.code() {
        None if matches!(error, tessera_client::Error::Request(_)) => ErrorKind::Invalid,
        None => ErrorKind::Transport,
        Some(C::NotFound | C::NoRoute) => ErrorKind::NotFound,
        Some(C::Conflict | C::UploadInProgress) => ErrorKind::Conflict,
        Some(C::Unauthorized) => ErrorKind::Unauthorized,
        Some(C::Forbidden) => ErrorKind::Forbidden,
        Some(C::RuleViolation) => ErrorKind::Rule,
        Some(C::Timeout) => ErrorKind::Transport,
        Some(C::Internal) => ErrorKind::Server,
        Some(C::TooManyChallenges | C::Busy) => ErrorKind::Busy,
        Some(
            C::BadRequest
            | C::InvalidSignature
            | C::PayloadTooLarge
            | C::UnsupportedMediaType
            | C::RangeNotSatisfiable
            | C::TooManyAccessKeys,
        ) => ErrorKind::Invalid,
        Some(_) => match error.status() {
            Some(404) => ErrorKind::NotFound,
            Some(409) => ErrorKind::Conflict,
            Some(401) => ErrorKind::Unauthorized,
            Some(403) => ErrorKind::Forbidden,
            Some(422) => ErrorKind::Rule,
            Some(408) => ErrorKind::Transport,
            Some(429) => ErrorKind::Busy,
            Some(status) if status >= 500 => ErrorKind::Server,
            _ => ErrorKind::Invalid,
        },
    }
}

/// The message of a client error: what the server said (or what failed on the way) and what to do about it.
fn client_detail(kind: ErrorKind, error: &tessera_client::Error) -> String {
    let said = match error {
        tessera_client::Error::Status {
            status, message, ..
        } if message.is_empty() => format!("the server answered HTTP {status}"),
        tessera_client::Error::Status { message, .. } => message.clone(),
        // Built before anything was sent: the client's message says what to correct.
        tessera_client::Error::Request(message) => return message.clone(),
        // Without the client's "transport failed:" prefix, which the kind already says.
        tessera_client::Error::Transport(message) => message.clone(),
        other => other.to_string(),
    };
    let advice = match kind {
        ErrorKind::NotFound => {
            "the record does not exist, or it was not shared with this owner (check its id and type)"
        }
        ErrorKind::Conflict => {
            "it was changed since that revision was read; read it again and retry with its current revision"
        }
        ErrorKind::Unauthorized => {
            "the server refused this owner's login or session; check that the key file belongs to an owner \
             registered on this server"
        }
        ErrorKind::Forbidden => {
            "this owner may not do that to this record (a read-only share cannot write)"
        }
        ErrorKind::Rule => "nothing was changed",
        ErrorKind::Busy => "wait a moment and retry",
        ErrorKind::Transport => "check the server's URL and that the server is running",
        ErrorKind::Server => "retry later, or ask the server's operator to read its log",
        _ => "the server refused the request; nothing was changed",
    };
    format!("{said}; {advice}")
}

impl From<tessera_primitives::Error> for Error {
    fn from(error: tessera_primitives::Error) -> Self {
        Self::from_source(primitive_kind(&error), error)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::from_source(ErrorKind::Invalid, error)
    }
}

// ---- Errors of the key and sharing layers (transport errors are mapped above, separately) ----
//
// One mapping per layer error, each used by every conversion that meets it: a key-layer error reaches the facade
// alone or inside a sharing error, and gets the same kind both ways. Every failure to open, unwrap or verify is the
// opaque `Crypto` kind, whatever the layer said about it.

impl From<tessera_keys::Error> for Error {
    fn from(error: tessera_keys::Error) -> Self {
        Self::from_source(keys_kind(&error), error)
    }
}

impl From<tessera_sharing::Error> for Error {
    fn from(error: tessera_sharing::Error) -> Self {
        Self::from_source(sharing_kind(&error), error)
    }
}

/// The kind of a key-layer error.
///
/// Exchange data without a wrap for this key (`NoWrapForKey`), a secret that may not seal because this owner did
/// not sign it (`NotSignedBySelf`), a secret of other exchange data and a bundle of another owner are failures to
/// open or verify, so they are `Crypto` like a failed tag: none of them says more to the caller.
fn keys_kind(error: &tessera_keys::Error) -> ErrorKind {
    use tessera_keys::Error as E;
    match error {
        E::Crypto
        | E::NoWrapForKey(_)
        | E::NotSignedBySelf
        | E::ExchangeMismatch
        | E::WrongOwner { .. } => ErrorKind::Crypto,
        E::Untrusted { .. } => ErrorKind::Untrusted,
        E::Primitive(primitive) => primitive_kind(primitive),
        _ => ErrorKind::Invalid,
    }
}

/// The kind of a sharing-layer error; the key-layer errors inside it are mapped by [`keys_kind`].
fn sharing_kind(error: &tessera_sharing::Error) -> ErrorKind {
    use tessera_sharing::Error as E;
    match error {
        E::Crypto => ErrorKind::Crypto,
        E::NoAccess => ErrorKind::NoAccess,
        E::Rule(_) => ErrorKind::Rule,
        E::UnknownSigner(_) => ErrorKind::Untrusted,
        E::Keys(keys) => keys_kind(keys),
        E::Primitive(primitive) => primitive_kind(primitive),
        _ => ErrorKind::Invalid,
    }
}

/// The kind of a primitives error.
fn primitive_kind(error: &tessera_primitives::Error) -> ErrorKind {
    use tessera_primitives::Error as E;
    match error {
        E::Crypto => ErrorKind::Crypto,
        E::Randomness | E::Rsa | E::Io(_) | E::StreamState(_) => ErrorKind::Internal,
        _ => ErrorKind::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let status = |status| tessera_client::Error::Status {
            status,
            code: tessera_wire::ErrorCode::Unknown,
            message: "y".into(),
        };
        assert!(Error::from_client(status(404)).is_not_found());
        assert!(Error::from_client(status(409)).is_conflict());
        assert!(Error::from_client(status(401)).is_unauthorized());
        assert!(Error::from_client(status(403)).is_forbidden());
        assert!(Error::from_client(status(422)).is_rule());
        assert!(Error::from_client(status(400)).is_invalid());
        assert!(Error::from_client(status(503)).is_server());
        assert!(Error::from_client(status(429)).is_busy());
        assert!(Error::from_client(tessera_client::Error::Transport("down".into())).is_transport());
    }

    #[test]
    fn codes_map_to_kinds() {
        use tessera_wire::ErrorCode as C;
        let kind = |code: C| {
            Error::from_client(tessera_client::Error::Status {
                status: code.status(),
                code,
                message: "y".into(),
            })
            .kind()
        };
        assert_eq!(kind(C::NotFound), ErrorKind::NotFound);
        assert_eq!(kind(C::NoRoute), ErrorKind::NotFound);
        assert_eq!(kind(C::UploadInProgress), ErrorKind::Conflict);
        assert_eq!(kind(C::RuleViolation), ErrorKind::Rule);
        assert_eq!(kind(C::InvalidSignature), ErrorKind::Invalid);
        assert_eq!(kind(C::Timeout), ErrorKind::Transport);
        assert_eq!(kind(C::Internal), ErrorKind::Server);
        assert_eq!(kind(C::TooManyChallenges), ErrorKind::Busy);
        assert_eq!(kind(C::Busy), ErrorKind::Busy);
    }

    #[test]
    fn messages_carry_the_servers_words_and_what_to_do() {
        use tessera_wire::ErrorCode as C;
        let message = |code: C, said: &str| {
            Error::from_client(tessera_client::Error::Status {
                status: code.status(),
                code,
                message: said.into(),
            })
            .to_string()
        };
        assert_eq!(
            message(
                C::Conflict,
                "entity is at revision 8, the write expected revision 7"
            ),
            "conflict: entity is at revision 8, the write expected revision 7; it was changed since that \
             revision was read; read it again and retry with its current revision"
        );
        assert_eq!(
            message(C::TooManyChallenges, "too many logins in progress"),
            "the server is busy: too many logins in progress; wait a moment and retry"
        );
        assert!(message(C::NotFound, "no such record").contains("not shared with this owner"));
        let unreachable = Error::from_client(tessera_client::Error::Transport(
            "cannot reach the server at http://127.0.0.1:1: connection refused".into(),
        ));
        assert!(unreachable.is_transport());
        assert!(unreachable.to_string().contains("http://127.0.0.1:1"));
        assert!(unreachable.to_string().contains("check the server's URL"));
        assert!(
            !unreachable.to_string().contains("transport failed"),
            "{unreachable}"
        );
        let no_scheme = Error::from_client(tessera_client::Error::Request("no scheme".into()));
        assert!(no_scheme.is_invalid());
        assert_eq!(no_scheme.to_string(), "invalid input: no scheme");
        let refused = Error::from_client(tessera_client::Error::Status {
            status: 404,
            code: C::NotFound,
            message: "no such record".into(),
        })
        .for_owner(tessera_keys::OwnerId::from_bytes([1; 16]));
        assert!(refused.is_not_found());
        assert!(
            refused
                .to_string()
                .contains("is not registered on this server")
        );
    }

    #[test]
    fn crypto_failures_stay_opaque() {
        let error = Error::from(tessera_sharing::Error::Crypto);
        assert!(error.is_crypto());
        assert_eq!(error.to_string(), "decryption or verification failed");
        assert!(Error::from(tessera_sharing::Error::NoAccess).is_no_access());
    }

    #[test]
    fn a_key_error_has_one_kind_alone_or_inside_a_sharing_error() {
        use tessera_keys::Error as K;
        let cases: [(fn() -> K, ErrorKind); 6] = [
            (|| K::Crypto, ErrorKind::Crypto),
            (
                || K::NoWrapForKey(tessera_keys::Fingerprint::from_bytes([1; 32])),
                ErrorKind::Crypto,
            ),
            (|| K::NotSignedBySelf, ErrorKind::Crypto),
            (|| K::ExchangeMismatch, ErrorKind::Crypto),
            (
                || K::Malformed {
                    what: "x",
                    reason: "y",
                },
                ErrorKind::Invalid,
            ),
            (
                || K::Primitive(tessera_primitives::Error::Randomness),
                ErrorKind::Internal,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(Error::from(error()).kind(), kind);
            assert_eq!(
                Error::from(tessera_sharing::Error::Keys(error())).kind(),
                kind
            );
        }
        assert!(Error::from(tessera_primitives::Error::Rsa).is_internal());
    }

    #[test]
    fn the_source_names_the_layer() {
        let error = Error::from_client(tessera_client::Error::Transport("refused".into()));
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("transport failed: refused"));
    }
}

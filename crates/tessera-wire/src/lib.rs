#![doc = include_str!("../README.md")]
// Wire types shared by the server and the client, and the two body encodings: bincode-1 (fast path,
// `application/x-bincode`) and JSON (`application/json`), chosen by `Content-Type` and `Accept`.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_keys::wire::{fixed_bytes, var_bytes};
use tessera_keys::{DelegationKey, Fingerprint, KeyBagEntry, OwnerId, SignatureBytes};
use tessera_primitives::SecretString;
use tessera_sharing::{EncryptedEntity, EntityId, ShareRequest};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Media type of bincode bodies.
pub const BINCODE: &str = "application/x-bincode";
/// Media type of JSON bodies.
pub const JSON: &str = "application/json";
/// Media type of attachment streams.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Header carrying access-control keys: comma-separated lowercase hex; may repeat.
pub const ACCESS_KEYS_HEADER: &str = "x-tessera-access-keys";
/// The most inbox messages one `GET /v1/inbox` returns: a client deletes what it opened and asks again while a
/// listing comes back full.
pub const INBOX_PAGE: usize = 1_000;

/// A body encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// bincode 1, through size-limited options that reject trailing bytes.
    Bincode,
    /// JSON.
    Json,
}

impl Format {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Bincode => BINCODE,
            Self::Json => JSON,
        }
    }

    /// The format of a media type (parameters ignored), if it is one of the two.
    pub fn from_media_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(BINCODE) {
            Some(Self::Bincode)
        } else if essence.eq_ignore_ascii_case(JSON) {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// Encodes `value`.
    ///
    /// # Errors
    /// If the value cannot be encoded (it always can for this crate's types).
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Self::Bincode => bincode_options(u64::MAX)
                .serialize(value)
                .map_err(|e| e.to_string()),
            Self::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        }
    }

    /// Decodes `bytes`, refusing trailing bytes and (for bincode) reading more than `limit` bytes or than
    /// `bytes` holds, whichever is less: no length prefix can make it allocate more than the body's size.
    ///
    /// # Errors
    /// A description of what is malformed.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8], limit: u64) -> Result<T, String> {
        let limit = limit.min(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        match self {
            Self::Bincode => bincode_options(limit)
                .deserialize(bytes)
                .map_err(|e| e.to_string()),
            Self::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// The one set of bincode options on both sides: varint lengths, a size limit, trailing bytes refused.
fn bincode_options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// An error body: a stable machine-readable code and a human message (never a secret). Always JSON, whatever
/// the request's `Accept`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The stable code, e.g. `"not_found"`, `"conflict"`, `"rule_violation"`.
    pub error: ErrorCode,
    /// What went wrong.
    pub message: String,
}

/// The stable, machine-readable code of an error answer (the `error` field of [`ErrorBody`]), serialized as the
/// snake-case strings below. Each code has one HTTP status; clients branch on the code, not the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request is malformed (a body, a path, a query, a header).
    BadRequest,
    /// 400: a signature does not verify against the stored key bundle.
    InvalidSignature,
    /// 401: the session is missing, forged or expired, or the login failed.
    Unauthorized,
    /// 403: the requester may see the record but not do this to it.
    Forbidden,
    /// 404: the record does not exist or the requester may not see it (one answer for both).
    NotFound,
    /// 404: no route for this method and path.
    NoRoute,
    /// 408: the request took longer than the server's limit.
    Timeout,
    /// 409: a stale revision, or a create of an id that exists.
    Conflict,
    /// 409: another upload of the same attachment is in progress.
    UploadInProgress,
    /// 413: the body exceeds the server's limit.
    PayloadTooLarge,
    /// 415: the body is neither JSON nor bincode.
    UnsupportedMediaType,
    /// 416: the requested range is past the end of the stream.
    RangeNotSatisfiable,
    /// 422: a sharing rule (DESIGN.md §6) rejects the write; nothing was stored.
    RuleViolation,
    /// 429: the owner logged in too often within a minute (only a holder of its key can cause this).
    TooManyChallenges,
    /// 431: more access-control keys than the server takes in one request or session.
    TooManyAccessKeys,
    /// 500: the server failed.
    Internal,
    /// 503: the server is at a limit it keeps for everyone's sake (connections, or memory held for clients without
    /// a session); retry shortly.
    Busy,
    /// A code this version does not know (a newer server), or an answer without an error body (a proxy's).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a server sends, for documentation and tests ([`ErrorCode::Unknown`] is never sent).
    pub const ALL: [Self; 17] = [
        Self::BadRequest,
        Self::InvalidSignature,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::NoRoute,
        Self::Timeout,
        Self::Conflict,
        Self::UploadInProgress,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RangeNotSatisfiable,
        Self::RuleViolation,
        Self::TooManyChallenges,
        Self::TooManyAccessKeys,
        Self::Internal,
        Self::Busy,
    ];

    /// The HTTP status a server answers with this code (500 for [`ErrorCode::Unknown`], which it never sends).
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidSignature => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::NoRoute => 404,
            Self::Timeout => 408,
            Self::Conflict | Self::UploadInProgress => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RangeNotSatisfiable => 416,
            Self::RuleViolation => 422,
            Self::TooManyChallenges => 429,
            Self::TooManyAccessKeys => 431,
            Self::Internal | Self::Unknown => 500,
            Self::Busy => 503,
        }
    }

    /// The code as it appears on the wire, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidSignature => "invalid_signature",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::NoRoute => "no_route",
            Self::Timeout => "timeout",
            Self::Conflict => "conflict",
            Self::UploadInProgress => "upload_in_progress",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::RuleViolation => "rule_violation",
            Self::TooManyChallenges => "too_many_challenges",
            Self::TooManyAccessKeys => "too_many_access_keys",
            Self::Internal => "internal",
            Self::Busy => "busy",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Asks for a login challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The owner logging in.
    pub owner: OwnerId,
}

/// A login challenge: 32 bytes the client signs as they are, single use, valid for a minute. Opaque to clients: the
/// server makes them a MAC it can check without storing them (docs/formats.md, "Login challenge").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// The bytes to sign.
    #[serde(with = "fixed_bytes")]
    pub challenge: [u8; 32],
}

/// Answers a challenge with a signature by one of the owner's bundles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The owner.
    pub owner: OwnerId,
    /// The challenge received.
    #[serde(with = "fixed_bytes")]
    pub challenge: [u8; 32],
    /// Fingerprint of the bundle whose key signed.
    pub fingerprint: Fingerprint,
    /// The name the client knows the server by and signed ([`server_name`] of its base URL): the server
    /// accepts it only if it is one of its own names, then verifies the signature over it.
    pub server: String,
    /// `OwnerKeys::sign_login_challenge(server, challenge)`.
    pub signature: SignatureBytes,
}

/// Longest server name accepted (a DNS name is at most 253 bytes; scheme and port add a few).
pub const MAX_SERVER_NAME: usize = 300;

/// The name a login is bound to: the normalised origin of `url`, `scheme://host:port` with the scheme and host in
/// lowercase and the port always explicit (80 for `http`, 443 for `https` when absent); a path, query or fragment
/// is dropped. `http://Records.Example/v1` and `http://records.example:80` have the same name.
///
/// # Errors
/// A message saying what is wrong if `url` is not an `http` or `https` URL with a host (user information in
/// it is refused too, since it would hide the real host).
pub fn server_name(url: &str) -> Result<String, String> {
    let bad = |what: &str| {
        format!(
            "{url:?} is not a server URL ({what}); give one like https://records.example or http://127.0.0.1:8080"
        )
    };
    let (scheme, rest) = url
        .trim()
        .split_once("://")
        .ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme is neither http nor https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("an unclosed IPv6 bracket"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("an invalid IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("junk after the host"))?,
            ),
        };
        (format!("[{}]", host.to_ascii_lowercase()), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
    if !valid_host {
        return Err(bad("a missing or invalid host"));
    }
    let port: u16 = match port {
        None => default_port,
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            port.parse().map_err(|_| bad("a port above 65535"))?
        }
        Some(_) => return Err(bad("an invalid port")),
    };
    let name = format!("{scheme}://{host}:{port}");
    if name.len() > MAX_SERVER_NAME {
        return Err(bad("a host name that is too long"));
    }
    Ok(name)
}

/// A session: a bearer token valid until `expires`. No `PartialEq`: it holds a secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The bearer token (hex). Secret: wiped on drop, `[redacted]` in `Debug`.
    pub token: BearerToken,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}

/// A session's bearer token (lowercase hex) as it travels: serialized as the plain string it is, but held in a
/// [`SecretString`], so that it is wiped on drop and `Debug` prints `[redacted]`.
///
/// No `PartialEq`: compare tokens with [`BearerToken::ct_eq`], in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BearerToken(SecretString);

impl BearerToken {
    /// Takes ownership of `token` as a secret.
    pub fn new(token: String) -> Self {
        Self(SecretString::new(token))
    }

    /// The token, for an `Authorization: Bearer` header.
    ///
    /// # Security
    /// Never log it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether two tokens are equal, in time independent of where they differ.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0)
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for BearerToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for BearerToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Access-control keys to hold in the session, in server memory only. No `PartialEq`: they are secrets.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeys {
    /// The keys, 16 bytes each.
    pub keys: Vec<AccessKeyBytes>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKeys({} keys)", self.keys.len())
    }
}

/// One access-control key on the wire: wiped on drop, `[redacted]` in `Debug`, the same bytes as a bare array.
/// No `PartialEq`: compare keys with [`AccessKeyBytes::ct_eq`], in constant time.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct AccessKeyBytes(#[serde(with = "fixed_bytes")] pub [u8; 16]);

impl AccessKeyBytes {
    /// Whether two keys are equal, in time independent of where they differ.
    pub fn ct_eq(&self, other: &Self) -> bool {
        tessera_primitives::constant_time_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for AccessKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A record with the revision it was read at, as the server answers it (the same fields, in the same order, as
/// the store's own `Versioned`, so the bytes on the wire are those the store's type would give).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The revision of `value`.
    pub rev: u64,
    /// The record.
    pub value: T,
}

/// Answer to a write: the revision now stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Written {
    /// The new revision.
    pub rev: u64,
}

/// A compare-and-swap of one key-bag entry (`PUT /v1/key-bag/{id}/swap`): `entry` replaces the stored entry only
/// if that is `previous` (or, with `previous` absent, if there is none). The owner state (protocol v2) is the one
/// entry of a bag that changes; every other entry is written once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBagSwap {
    /// The new entry.
    pub entry: KeyBagEntry,
    /// The entry it replaces, as the client last read it.
    pub previous: Option<KeyBagEntry>,
}

/// Several entities (bulk create, query results).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entities {
    /// The entities.
    pub entities: Vec<EncryptedEntity>,
}

/// An update of one entity: the new value and the revision it replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityUpdate {
    /// The new value.
    pub entity: EncryptedEntity,
    /// The revision it replaces.
    pub expected_rev: u64,
}

/// A bulk share: the request and, per entity, the revision it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// The delegations to add.
    pub request: ShareRequest,
}

/// One revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The entity.
    pub entity_id: EntityId,
    /// The delegation to remove with its descendants.
    pub delegation_key: DelegationKey,
}

/// A bulk revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// The revocations.
    pub revocations: Vec<Revocation>,
}

/// Revisions after a bulk write, in request order of the entities touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkWritten {
    /// `(entity, new revision)`.
    pub written: Vec<(EntityId, u64)>,
}

/// Recovery data as sent (`id` is in the path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryBody {
    /// The sealed payload.
    #[serde(with = "var_bytes")]
    pub sealed: Vec<u8>,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_normalised_origins() {
        for (url, name) in [
            ("https://records.example", "https://records.example:443"),
            ("HTTPS://Records.Example/", "https://records.example:443"),
            (
                "https://records.example:443/v1?x#y",
                "https://records.example:443",
            ),
            ("http://records.example", "http://records.example:80"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost:8080/", "http://localhost:8080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[FE80::1]", "http://[fe80::1]:80"),
        ] {
            assert_eq!(server_name(url).as_deref(), Ok(name), "{url}");
        }
        for url in [
            "records.example",
            "ftp://records.example",
            "https://",
            "https://:443",
            "https://user@records.example",
            "https://records.example:",
            "https://records.example:99999",
            "https://records.example:+80",
            "https://[::1",
            "https://[nope]:80",
            "https://[::1]x",
            "https://rec ords.example",
        ] {
            let error = server_name(url).unwrap_err();
            assert!(error.contains("give one like"), "{url}: {error}");
        }
    }

    #[test]
    fn bincode_never_reads_past_the_body() {
        // A length prefix claiming 2^40 bytes in a 9-byte body: refused by the limit, whatever the caller's.
        let mut hostile = vec![0xfd];
        hostile.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let answer: Result<Vec<u8>, _> = Format::Bincode.decode(&hostile, u64::MAX);
        assert!(answer.is_err());
        // Trailing bytes are refused.
        let mut body = Format::Bincode.encode(&7u32).unwrap();
        assert_eq!(Format::Bincode.decode::<u32>(&body, u64::MAX), Ok(7));
        body.push(0);
        assert!(Format::Bincode.decode::<u32>(&body, u64::MAX).is_err());
    }

    #[test]
    fn secrets_print_redacted_and_keep_their_bytes() {
        let session = Session {
            token: BearerToken::new("ab".repeat(32)),
            expires: 7,
        };
        assert_eq!(
            format!("{session:?}"),
            "Session { token: [redacted], expires: 7 }"
        );
        let keys = AccessKeys {
            keys: vec![AccessKeyBytes([0x41; 16])],
        };
        assert_eq!(format!("{:?}", keys.keys), "[[redacted]]");
        // The same bytes as the plain types had: a string, and 16 raw bytes (hex in JSON).
        #[derive(Serialize)]
        struct PlainSession {
            token: String,
            expires: u64,
        }
        let plain = PlainSession {
            token: "ab".repeat(32),
            expires: 7,
        };
        for format in [Format::Bincode, Format::Json] {
            assert_eq!(
                format.encode(&session).unwrap(),
                format.encode(&plain).unwrap()
            );
            let back: Session = format
                .decode(&format.encode(&session).unwrap(), 1 << 10)
                .unwrap();
            assert!(back.token.ct_eq(&session.token));
            assert_eq!(back.expires, session.expires);
        }
        // The plain form: the array as before, through the same `fixed_bytes` helper.
        #[derive(Serialize)]
        struct PlainKeys {
            keys: Vec<PlainKey>,
        }
        #[derive(Serialize)]
        #[serde(transparent)]
        struct PlainKey(#[serde(with = "fixed_bytes")] [u8; 16]);
        let plain = PlainKeys {
            keys: vec![PlainKey([0x41; 16])],
        };
        assert_eq!(
            Format::Bincode.encode(&keys).unwrap(),
            Format::Bincode.encode(&plain).unwrap()
        );
        assert_eq!(
            Format::Json.encode(&keys).unwrap(),
            format!("{{\"keys\":[\"{}\"]}}", "41".repeat(16)).into_bytes()
        );
    }

    #[test]
    fn error_codes_are_the_snake_case_strings() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!((400..600).contains(&code.status()), "{code}");
        }
        let body = ErrorBody {
            error: ErrorCode::NotFound,
            message: "no such record".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"not_found","message":"no such record"}"#
        );
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(newer.error, ErrorCode::Unknown);
    }
}

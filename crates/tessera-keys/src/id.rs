//! Identifiers and small value types: owner and exchange-data ids, fingerprints, entity types,
//! access-control and delegation keys, format versions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_primitives::{constant_time_eq, random_array, sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// Fixed-size byte arrays on the wire: lowercase hex in human-readable formats (JSON), raw bytes otherwise (bincode).
/// Use with `#[serde(with = "tessera_keys::wire::fixed_bytes")]`.
pub mod fixed_bytes {
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    /// Serializes `bytes`.
    ///
    /// # Errors
    /// As the serializer.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        super::var_bytes::serialize(bytes, serializer)
    }

    /// Deserializes exactly `N` bytes.
    ///
    /// # Errors
    /// A wrong length or invalid hex.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let bytes = super::var_bytes::deserialize(deserializer)?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| D::Error::invalid_length(len, &format!("{N} bytes").as_str()))
    }
}

/// Variable-length byte strings on the wire: lowercase hex in human-readable formats, raw bytes otherwise.
/// Use with `#[serde(with = "tessera_keys::wire::var_bytes")]`.
pub mod var_bytes {
    use serde::de::Visitor;
    use serde::{Deserializer, Serializer};

    /// Serializes `bytes`.
    ///
    /// # Errors
    /// As the serializer.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&super::hex(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    /// Deserializes a byte string.
    ///
    /// # Errors
    /// Invalid hex or a value that is not a byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes or a lowercase hex string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
                super::unhex(text).ok_or_else(|| E::custom("invalid hex"))
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                Ok(bytes.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(bytes)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(out)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor)
        } else {
            deserializer.deserialize_byte_buf(BytesVisitor)
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let digit = |nibble: u8| char::from_digit(u32::from(nibble), 16).unwrap_or('0');
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(digit(byte >> 4));
        out.push(digit(byte & 0x0f));
    }
    out
}

/// The bytes of `text`, which must be lowercase hex of even length: the strict inverse of [`hex`].
///
/// Uppercase digits, signs, whitespace and prefixes are refused, so that exactly one text decodes to a given byte
/// string (an id or key read from a request names one value, never several spellings of it). Every hex decoder of
/// Tessera should be this one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// The format version of every value this layer sends or stores. Decoding an unknown version is a clear error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct FormatVersion(u8);

impl FormatVersion {
    /// Version 2 (protocol v2: signed versions and delegations, signed wraps, sealed owner state), the only one
    /// this build writes and reads. Version 1 was never deployed and is not readable (CHANGELOG.md).
    pub const V2: Self = Self(2);

    /// The version number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Accepts `version` if this build reads it.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] otherwise, naming `what`.
    pub fn check(version: u8, what: &'static str) -> Result<Self> {
        if version == Self::V2.0 {
            Ok(Self::V2)
        } else {
            Err(Error::UnsupportedVersion {
                what,
                version,
                supported: Self::V2.0,
            })
        }
    }
}

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let version = u8::deserialize(deserializer)?;
        Self::check(version, "tessera").map_err(serde::de::Error::custom)
    }
}

/// A random (version 4) UUID: the shape of owner, entity and attachment ids.
///
/// Displayed and parsed in the hyphenated lowercase form; on the wire a string in JSON and 16 bytes in bincode.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// Draws a new random UUID.
    ///
    /// # Errors
    /// [`Error::Primitive`] if the operating system's generator fails.
    pub fn generate() -> Result<Self> {
        let mut bytes: [u8; 16] = random_array()?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Ok(Self(bytes))
    }

    /// The UUID with these 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex(&self.0);
        let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default();
        write!(
            f,
            "{}-{}-{}-{}-{}",
            part(0..8),
            part(8..12),
            part(12..16),
            part(16..20),
            part(20..32)
        )
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

impl FromStr for Uuid {
    type Err = Error;

    /// Parses the hyphenated lowercase form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    fn from_str(text: &str) -> Result<Self> {
        let malformed = Error::Malformed {
            what: "uuid",
            reason: "expected the hyphenated lowercase form",
        };
        let groups: Vec<&str> = text.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(malformed);
        }
        let bytes = unhex(&groups.concat()).ok_or(malformed)?;
        let array: [u8; 16] = bytes.try_into().map_err(|_| Error::Malformed {
            what: "uuid",
            reason: "expected 16 bytes",
        })?;
        Ok(Self(array))
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            fixed_bytes::deserialize(deserializer).map(Self)
        }
    }
}

/// Defines an id type that is a [`Uuid`] with a meaning: `generate`, `from_bytes`, `as_bytes`, `Display`,
/// `FromStr` and serde, all delegating to the UUID. Used for owner ids here and for entity and attachment ids above.
#[macro_export]
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name($crate::Uuid);

        impl $name {
            /// Draws a new random id.
            ///
            /// # Errors
            /// If the operating system's generator fails.
            pub fn generate() -> ::core::result::Result<Self, $crate::Error> {
                $crate::Uuid::generate().map(Self)
            }

            /// The id with these 16 bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self($crate::Uuid::from_bytes(bytes))
            }

            /// The 16 bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::Error;

            fn from_str(text: &str) -> ::core::result::Result<Self, $crate::Error> {
                text.parse().map(Self)
            }
        }
    };
}

uuid_id!(
    /// A data owner's id: a random (version 4) UUID.
    OwnerId
);

/// Defines a fixed-size public byte identifier with hex `Display`/`Debug` and hex-or-bytes serde.
#[macro_export]
macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; $len]);

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                $crate::wire::fixed_bytes::serialize(&self.0, serializer)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                $crate::wire::fixed_bytes::deserialize(deserializer).map(Self)
            }
        }

        impl $name {
            /// The value with these bytes.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&$crate::wire::hex(&self.0))
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = $crate::Error;

            fn try_from(bytes: &[u8]) -> ::core::result::Result<Self, $crate::Error> {
                bytes.try_into().map(Self).map_err(|_| $crate::Error::Malformed {
                    what: stringify!($name),
                    reason: "wrong length",
                })
            }
        }
    };
}

byte_id!(
    /// Id of one exchange data: 16 random bytes.
    ExchangeDataId,
    16
);

byte_id!(
    /// Id of one inbox message: 16 random bytes drawn by its sender.
    InboxMessageId,
    16
);

byte_id!(
    /// SHA-256 fingerprint of a key bundle's canonical bytes (docs/formats.md).
    Fingerprint,
    32
);

byte_id!(
    /// Delegation key: `SHA-256("tessera/v1/dk" ‖ 0x00 ‖ access-control key)`. Public: the server stores it with
    /// an entity and matches the hashes of presented access-control keys against it. It reveals no party.
    DelegationKey,
    32
);

byte_id!(
    /// Opaque id of a key-bag entry: an HMAC of the exchange data id under a key only the owner can derive.
    KeyBagEntryId,
    32
);

impl ExchangeDataId {
    /// Draws a new random id.
    ///
    /// # Errors
    /// [`Error::Primitive`] if the operating system's generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self(random_array()?))
    }
}

impl InboxMessageId {
    /// Draws a new random id.
    ///
    /// # Errors
    /// [`Error::Primitive`] if the operating system's generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self(random_array()?))
    }
}

impl Fingerprint {
    /// A short human-comparable code: the first 10 bytes as five groups of four hex digits, `a1b2-c3d4-…`.
    pub fn short_code(&self) -> String {
        self.0
            .get(..10)
            .unwrap_or_default()
            .chunks(2)
            .map(hex)
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// The type of an entity (`Patient`, `Contact`, …): 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
///
/// Mixed into access-control keys, so that one pair of owners has different delegation keys per entity type.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityType(String);

impl EntityType {
    /// Longest accepted type name.
    pub const MAX_LEN: usize = 64;

    /// Validates `name` as an entity type.
    ///
    /// # Errors
    /// [`Error::Malformed`] if it is empty, too long, or has other characters.
    pub fn new(name: &str) -> Result<Self> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > Self::MAX_LEN || !name.chars().all(valid_char) {
            return Err(Error::Malformed {
                what: "entity type",
                reason: "expected 1 to 64 ASCII letters, digits, '.', '_' or '-'",
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntityType {
    type Error = Error;

    fn try_from(name: String) -> Result<Self> {
        Self::new(&name)
    }
}

impl From<EntityType> for String {
    fn from(entity_type: EntityType) -> Self {
        entity_type.0
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityType({})", self.0)
    }
}

/// Length of an access-control key.
pub const ACCESS_CONTROL_KEY_LEN: usize = 16;

/// An access-control key: `HKDF(access secret, "tessera/v1/ack", entity type)[..16]` (DESIGN.md §5.3).
///
/// # Security
/// A client presents it to prove access; the server hashes it into a [`DelegationKey`] and keeps it in memory
/// only. It is a secret: wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AccessControlKey([u8; ACCESS_CONTROL_KEY_LEN]);

impl AccessControlKey {
    /// Takes 16 bytes as an access-control key (as received by a server).
    pub fn from_bytes(bytes: [u8; ACCESS_CONTROL_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key bytes, to present to a server.
    ///
    /// # Security
    /// Never log them.
    pub fn expose_secret(&self) -> &[u8; ACCESS_CONTROL_KEY_LEN] {
        &self.0
    }

    /// The delegation key the server stores: `SHA-256("tessera/v1/dk" ‖ 0x00 ‖ ack)`.
    pub fn delegation_key(&self) -> DelegationKey {
        let mut input = [0u8; DK_TAG.len() + ACCESS_CONTROL_KEY_LEN];
        let (tag, key) = input.split_at_mut(DK_TAG.len());
        tag.copy_from_slice(DK_TAG);
        key.copy_from_slice(&self.0);
        let digest = sha256(&input);
        input.zeroize();
        DelegationKey(digest)
    }

    /// Whether this key hashes to `delegation_key`, compared in constant time.
    pub fn matches(&self, delegation_key: &DelegationKey) -> bool {
        constant_time_eq(self.delegation_key().as_bytes(), delegation_key.as_bytes())
    }

    /// Whether `other` is the same key, compared in constant time.
    ///
    /// # Security
    /// Access-control keys have no `PartialEq`, so that no comparison of them can leak timing through `==`.
    pub fn ct_eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

const DK_TAG: &[u8] = b"tessera/v1/dk\0";

impl fmt::Debug for AccessControlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_id_is_a_v4_uuid_and_round_trips() -> Result<()> {
        let id = OwnerId::generate()?;
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.as_bytes()[14], b'4');
        assert_eq!(text.parse::<OwnerId>()?, id);
        assert!("not-a-uuid".parse::<OwnerId>().is_err());
        assert!(
            "0123456789abcdef0123456789abcdef"
                .parse::<OwnerId>()
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn entity_types_are_validated() {
        assert!(EntityType::new("Contact").is_ok());
        assert!(EntityType::new("health-element_v2.1").is_ok());
        for bad in ["", "with space", "é", &"x".repeat(65)] {
            assert!(EntityType::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_code_has_five_groups() {
        let code = Fingerprint::from_bytes([0xab; 32]).short_code();
        assert_eq!(code, "abab-abab-abab-abab-abab");
    }

    #[test]
    fn access_control_keys_never_print_and_match_their_delegation_key() {
        let ack = AccessControlKey::from_bytes([1; 16]);
        assert_eq!(format!("{ack:?}"), "[redacted]");
        assert!(ack.matches(&ack.delegation_key()));
        assert!(!AccessControlKey::from_bytes([2; 16]).matches(&ack.delegation_key()));
        assert!(ack.ct_eq(&AccessControlKey::from_bytes([1; 16])));
        assert!(!ack.ct_eq(&AccessControlKey::from_bytes([2; 16])));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xfe, 0xff])),
            Some(vec![0, 1, 0xfe, 0xff])
        );
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("AB"), None);
        for other_spelling in ["+f", "-0", " a", "0x", "aB"] {
            assert_eq!(unhex(other_spelling), None, "{other_spelling}");
        }
    }
}

//! The values the session hands out and takes: references to entities, opened records, shares, new records.

use serde_json::{Map, Value};
use tessera_keys::{EntityType, OwnerId};
use tessera_primitives::stream::StreamLayout;
use tessera_sharing::{AttachmentId, AttachmentRef, EntityId, Permission, Visibility};

/// Names one entity: its type and its id. The type tells the session which access-control keys open it, and a
/// record of another type with the same id is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntityRef {
    /// The entity's type (`Note`, `Patient`, `Contact`, …).
    pub entity_type: EntityType,
    /// The entity's id.
    pub id: EntityId,
}

impl EntityRef {
    /// A reference to entity `id` of type `entity_type`.
    pub fn new(entity_type: EntityType, id: EntityId) -> Self {
        Self { entity_type, id }
    }
}

/// What a write stored: the entity and its new revision (name it in the next write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The entity written.
    pub entity: EntityRef,
    /// Its revision now.
    pub rev: u64,
}

/// An attachment of a record, as its reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttachmentInfo {
    /// Its id.
    pub id: AttachmentId,
    /// Length of the content, in bytes.
    pub len: u64,
    /// Length of the encrypted stream the server stores, in bytes.
    pub encrypted_len: u64,
}

impl AttachmentInfo {
    pub(crate) fn from_ref(reference: &AttachmentRef) -> Self {
        let len = StreamLayout::from_encrypted_len(reference.encrypted_len)
            .map_or(reference.encrypted_len, |layout| layout.plaintext_len());
        Self {
            id: reference.id,
            len,
            encrypted_len: reference.encrypted_len,
        }
    }
}

/// A record opened by this session's owner: the decrypted content and what the owner may do with it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Record<T> {
    /// The entity.
    pub entity: EntityRef,
    /// The revision read; name it to update or delete.
    pub rev: u64,
    /// The content: public and encrypted fields merged.
    pub content: T,
    /// What the delegation this owner opened the record through lets it do.
    pub permission: Permission,
    /// Parents this record is linked to (a contact's patient), as far as this owner's delegation tells.
    pub parents: Vec<EntityId>,
    /// The record's attachments.
    pub attachments: Vec<AttachmentInfo>,
    /// The owner that wrote this version: its signature, and its right to write through a signed chain from the
    /// creator, were verified before anything was returned.
    pub writer: OwnerId,
    /// The owner that created the record.
    pub creator: OwnerId,
}

/// What a query found ([`Session::query_report`](crate::Session::query_report)): the records this owner opened,
/// and those it could not (altered, rolled back, or signed by an owner the trust policy refuses), each with its
/// reference and why. One bad record never hides the others.
#[derive(Debug)]
#[non_exhaustive]
pub struct QueryReport<T> {
    /// The records opened and verified.
    pub records: Vec<Record<T>>,
    /// The records that were found but failed to open or verify.
    pub unreadable: Vec<(EntityRef, crate::Error)>,
}

/// One delegation to add: to whom, with which permission, and which parties appear in clear on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// The owner receiving access.
    pub delegate: OwnerId,
    /// What the delegate may do (never more than the sharer may).
    pub permission: Permission,
    /// Which of the two parties the stored delegation names in clear.
    pub visibility: Visibility,
}

impl Share {
    /// Read access for `delegate`. The stored delegation names neither party ([`Visibility::Anonymous`], protocol
    /// v2's default): only the two owners can tell whose it is.
    pub fn read(delegate: OwnerId) -> Self {
        Self {
            delegate,
            permission: Permission::Read,
            visibility: Visibility::Anonymous,
        }
    }

    /// Write access for `delegate`, naming neither party (as [`Share::read`]).
    pub fn write(delegate: OwnerId) -> Self {
        Self {
            permission: Permission::Write,
            ..Self::read(delegate)
        }
    }

    /// The same share with another visibility, naming one or both parties in clear on the stored record
    /// ([`Visibility::Explicit`], [`Visibility::AnonymousDelegate`] names the sharer, [`Visibility::AnonymousDelegator`]
    /// the delegate). Every clear name is a line of the sharing graph for whoever reads the database: use them only
    /// for tools that must read it without keys.
    #[must_use]
    pub fn with_visibility(self, visibility: Visibility) -> Self {
        Self { visibility, ..self }
    }
}

/// Which records of a type [`Session::query`](crate::Session::query) returns. Each is found through the delegation
/// keys of the exchange data between two owners (one request per exchange data), so the server learns only which
/// opaque keys the owner asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Query {
    /// The records this owner created (their root delegation is its own).
    Created,
    /// The records this owner shared with `partner`.
    SharedWith(OwnerId),
    /// The records `partner` shared with this owner, including anonymous shares from a patient.
    SharedBy(OwnerId),
}

/// A record to create, with everything beyond its content: a parent to link to, shares to add in the same request,
/// and whether its secret id stays with the creator.
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub(crate) entity_type: EntityType,
    pub(crate) content: Map<String, Value>,
    pub(crate) parent: Option<EntityRef>,
    pub(crate) shares: Vec<Share>,
    pub(crate) confidential: bool,
}

impl NewRecord {
    /// A record of `entity_type` with `content` (a JSON object; the type's manifest decides what is encrypted).
    pub fn new(entity_type: EntityType, content: Map<String, Value>) -> Self {
        Self {
            entity_type,
            content,
            parent: None,
            shares: Vec::new(),
            confidential: false,
        }
    }

    /// A record of `entity_type` from any serialisable value that serialises to a JSON object.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Invalid`] if `content` does not serialise to a JSON object.
    pub fn from_value<T: serde::Serialize>(
        entity_type: EntityType,
        content: &T,
    ) -> crate::Result<Self> {
        Ok(Self::new(entity_type, to_object(content)?))
    }

    /// Links the record to `parent` (a contact to its patient): the parent's id is sealed in the record's
    /// delegations, and the server sees only a search tag that only the parent's delegates can compute.
    #[must_use]
    pub fn child_of(mut self, parent: EntityRef) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Adds a share, created in the same request as the record.
    #[must_use]
    pub fn share_with(mut self, share: Share) -> Self {
        self.shares.push(share);
        self
    }

    /// Keeps the record's secret id for its creator: children linked to it are then findable by the creator only,
    /// even by owners the record itself is shared with.
    #[must_use]
    pub fn confidential(mut self) -> Self {
        self.confidential = true;
        self
    }
}

/// What revoke-and-rotate did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotated {
    /// The entity's revision after the rotation.
    pub rev: u64,
    /// Number of delegations removed: the revoked ones, their descendants, and those this owner could not re-wrap
    /// (made by other sharers, who must share again).
    pub removed: usize,
    /// Number of attachments re-encrypted under new keys.
    pub attachments: usize,
}

/// Serialises `value` into a JSON object.
pub(crate) fn to_object<T: serde::Serialize + ?Sized>(
    value: &T,
) -> crate::Result<Map<String, Value>> {
    match serde_json::to_value(value)? {
        Value::Object(map) => Ok(map),
        _ => Err(crate::Error::invalid(
            "a record's content must serialise to a JSON object",
        )),
    }
}

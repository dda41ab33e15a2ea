//! The one error type of the sharing layer, and the rule violations the server reports.

use tessera_keys::DelegationKey;

/// Everything that can go wrong in `tessera-sharing`.
///
/// Every failed decryption or commitment check is the single opaque [`Error::Crypto`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Decryption or a key-commitment check failed. Deliberately says nothing more.
    #[error("decryption or verification failed")]
    Crypto,

    /// A signature on the entity was made by an owner whose key bundle the caller has not trusted yet: trust it
    /// (through the trust policy) and open the entity again.
    #[error("the entity is signed by owner {0}, whose key bundle is not known yet")]
    UnknownSigner(tessera_keys::OwnerId),

    /// The owner holds no delegation of this entity that it can open.
    #[error("no delegation of this entity is accessible to this owner")]
    NoAccess,

    /// A request breaks a sharing rule (DESIGN.md §6); nothing was changed.
    #[error("sharing rule violated: {0}")]
    Rule(#[from] RuleViolation),

    /// An encryption manifest is malformed.
    #[error("invalid manifest path `{path}`: {reason}")]
    Manifest {
        /// The offending path.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A document or a decrypted payload is not what this layer expects.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The key layer refused an operation.
    #[error(transparent)]
    Keys(tessera_keys::Error),

    /// The primitives layer refused an operation.
    #[error(transparent)]
    Primitive(tessera_primitives::Error),
}

impl From<tessera_keys::Error> for Error {
    fn from(error: tessera_keys::Error) -> Self {
        match error {
            tessera_keys::Error::Crypto => Self::Crypto,
            other => Self::Keys(other),
        }
    }
}

impl From<tessera_primitives::Error> for Error {
    fn from(error: tessera_primitives::Error) -> Self {
        match error {
            tessera_primitives::Error::Crypto => Self::Crypto,
            other => Self::Primitive(other),
        }
    }
}

/// A broken sharing rule. The server answers these with a 4xx and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleViolation {
    /// An entity has no root delegation (one without parents).
    #[error("the entity has no root delegation")]
    NoRoot,
    /// An entity has more than one root delegation.
    #[error("the entity has {0} root delegations; exactly one is allowed")]
    SeveralRoots(usize),
    /// The root delegation does not grant write.
    #[error("the root delegation must grant write")]
    RootNotWrite,
    /// A delegation names a parent that does not exist.
    #[error("delegation {child} names a missing parent {parent}")]
    MissingParent {
        /// The delegation.
        child: DelegationKey,
        /// The missing parent.
        parent: DelegationKey,
    },
    /// Delegations form a cycle or do not all lead to the root.
    #[error("delegation {0} does not lead back to the root")]
    Detached(DelegationKey),
    /// A delegation grants more than one of its parents.
    #[error("delegation {child} grants more than its parent {parent}")]
    PermissionWidened {
        /// The delegation.
        child: DelegationKey,
        /// The parent granting less.
        parent: DelegationKey,
    },
    /// A share would overwrite an existing delegation.
    #[error("delegation {0} already exists")]
    DelegationExists(DelegationKey),
    /// A share's parent is not among the requester's delegations.
    #[error("the requester has no access to parent delegation {0}")]
    ParentNotAccessible(DelegationKey),
    /// A share has no parent.
    #[error("a shared delegation needs a parent")]
    NoParent,
    /// A plain update tried to change the security metadata, the id, the type or the key commitment.
    #[error("a plain update cannot change {0}")]
    Immutable(&'static str),
    /// A revocation names a delegation that does not exist.
    #[error("delegation {0} does not exist")]
    UnknownDelegation(DelegationKey),
    /// A revocation targets the root delegation.
    #[error("the root delegation cannot be revoked")]
    RevokeRoot,
    /// The requester may not revoke that delegation (it holds neither it nor an ancestor).
    #[error("the requester holds neither delegation {0} nor one of its ancestors")]
    NotAnAncestor(DelegationKey),
    /// The requester needs write access for this operation.
    #[error("write access is required")]
    WriteRequired,
    /// A share request names an entity twice for the same delegation key, or another entity than the one given.
    #[error("the share request is inconsistent: {0}")]
    InconsistentRequest(&'static str),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The plaintexts a delegation seals besides its chain: the entity-key payload and a secret id (docs/formats.md).

use super::*;

/// The sealed entity key of a delegation: `entity key (32) ‖ creator (16) ‖ delegator's tag (32)`.
pub(super) fn encode_key_payload(
    key: &AeadKey,
    creator: OwnerId,
    tag: &[u8; 32],
) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(80));
    bytes.extend_from_slice(key.expose_secret());
    bytes.extend_from_slice(creator.as_bytes());
    bytes.extend_from_slice(tag);
    bytes
}

pub(super) fn decode_key_payload(bytes: &[u8]) -> Result<(AeadKey, OwnerId, [u8; 32])> {
    let (key, rest) = bytes.split_at_checked(32).ok_or(Error::Crypto)?;
    let (creator, tag) = rest.split_at_checked(16).ok_or(Error::Crypto)?;
    Ok((
        key_from_bytes(key)?,
        OwnerId::from_bytes(creator.try_into().map_err(|_| Error::Crypto)?),
        tag.try_into().map_err(|_| Error::Crypto)?,
    ))
}

/// A sealed secret id: `scope (0 shared, 1 confidential) ‖ 32 bytes`.
pub(super) fn encode_secret_id(id: &SecretId, scope: SecretIdScope) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(33));
    bytes.push(u8::from(scope == SecretIdScope::Confidential));
    bytes.extend_from_slice(id.0.expose_secret());
    bytes
}

pub(super) fn decode_secret_id(bytes: &[u8]) -> Result<(SecretId, SecretIdScope)> {
    let [flag, rest @ ..] = bytes else {
        return Err(Error::Crypto);
    };
    let scope = match flag {
        0 => SecretIdScope::Shared,
        1 => SecretIdScope::Confidential,
        _ => return Err(Error::Crypto),
    };
    Ok((
        SecretId(Secret32::try_from(rest).map_err(|_| Error::Crypto)?),
        scope,
    ))
}

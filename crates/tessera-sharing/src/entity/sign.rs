//! Signing what an operation produced: the drafts' statements go into one batch, signed once, and each proof is
//! sealed where it belongs (the writer's proof under the entity key, a write delegation's chain under its
//! exchange key).

use super::*;

/// A link of a chain being built: already signed, or a statement of the batch being signed.
#[derive(Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few short-lived values per operation; boxing buys nothing"
)]
pub(super) enum ChainLink {
    Signed(Link),
    New(DelegationStatement, u16),
}

/// An entity whose statements wait for the batch signature.
pub(super) struct Draft {
    pub(super) entity: EncryptedEntity,
    pub(super) entity_key: AeadKey,
    pub(super) group: usize,
    pub(super) root: DelegationKey,
    pub(super) creator: OwnerId,
    pub(super) writer: OwnerId,
    /// The chain the writer presents, root first.
    pub(super) writer_chain: Vec<ChainLink>,
    /// Write delegations to give their sealed chain: delegation key, sealing exchange key, chain.
    pub(super) write_chains: Vec<(DelegationKey, AeadKey, Vec<ChainLink>)>,
}

impl Draft {
    /// Adds the version statement of the entity as it now stands, then signs nothing: see [`sign_drafts`].
    fn push_version(&self, batch: &mut BatchBuilder) -> Result<u16> {
        let hash = version_hash(&self.entity, &self.root, self.creator, self.writer)?;
        batch.push(self.group, hash)
    }
}

/// Signs the drafts' statements with one signature and seals each proof where it belongs: the writer's proof
/// under the entity key, each write delegation's chain under its exchange key.
pub(super) fn sign_drafts(
    drafts: Vec<Draft>,
    mut batch: BatchBuilder,
    signer: &OwnerKeys,
) -> Result<Vec<(EncryptedEntity, Vec<Link>, AeadKey)>> {
    let mut positions = Vec::with_capacity(drafts.len());
    for draft in &drafts {
        positions.push(draft.push_version(&mut batch)?);
    }
    let signed = batch.sign(signer)?;
    let resolve = |group: usize, links: &[ChainLink]| -> Result<Vec<Link>> {
        links
            .iter()
            .map(|link| match link {
                ChainLink::Signed(link) => Ok(link.clone()),
                ChainLink::New(statement, position) => Ok(Link::new(
                    statement.clone(),
                    signed.proof(group, *position)?,
                )),
            })
            .collect()
    };
    let mut out = Vec::with_capacity(drafts.len());
    for (draft, position) in drafts.into_iter().zip(positions) {
        let Draft {
            mut entity,
            entity_key,
            group,
            writer_chain,
            write_chains,
            ..
        } = draft;
        let writer_chain = resolve(group, &writer_chain)?;
        let proof = signed.proof(group, position)?;
        let plaintext = Zeroizing::new(encode_writer_proof(&proof, &writer_chain)?);
        entity.writer_proof = Sealed(entity_key.seal(
            &plaintext,
            &writer_proof_aad(
                &entity.entity_type,
                &entity.id,
                entity.content_version,
                entity.key_epoch,
            ),
        )?);
        for (key, exchange_key, chain) in write_chains {
            let chain = resolve(group, &chain)?;
            let sealed = seal_chain(&exchange_key, &key, &entity.id, &chain)?;
            if let Some(delegation) = entity.security_metadata.delegations.get_mut(&key) {
                delegation.chain = vec![sealed];
            }
        }
        out.push((entity, writer_chain, entity_key));
    }
    Ok(out)
}

pub(super) fn seal_chain(
    exchange_key: &AeadKey,
    delegation_key: &DelegationKey,
    entity: &EntityId,
    chain: &[Link],
) -> Result<Sealed> {
    let bytes = encode_chain(Enc::untagged(), chain)?.finish();
    seal_delegation_field(
        exchange_key,
        delegation_key,
        DelegationField::Chain,
        entity,
        &[],
        &bytes,
    )
}

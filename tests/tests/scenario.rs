//! Three HCPs and fifty patients share, revoke, rotate, update and read at random over several sessions, against a
//! model of the sharing history: every read returns exactly what that history allows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use common::{Env, Ledger, Owner, PatientFile, assert_no_links, occurrences};
use serde_json::{Map, Value, json};
use tessera::{
    EntityId, EntityRef, EntityType, NewRecord, OwnerKind, Permission, Session, Share, Visibility,
};
use tessera_store::Store;

/// The generator's seed. `TESSERA_E2E_SEED` (decimal or `0x` hex) explores another history; a failure replays
/// exactly with the seed its message names.
const SEED: u64 = 0x5eed_7e55_e7a0_0001;
const HCPS: usize = 3;
const PATIENTS: usize = 50;
const ROUNDS: usize = 5;
const STEPS_PER_ROUND: usize = 500;
/// Every sensitive value starts with it, so one scan of the database file looks for all of them at once.
const MARKER: &str = "e2e-secret-";
/// Operations shown in the message of a failed expectation.
const HISTORY: usize = 25;

#[tokio::test]
async fn hcps_and_patients_share_revoke_and_read_over_several_sessions() {
    let started = Instant::now();
    let mut world = World::populate().await;
    let populated = started.elapsed();
    for round in 0..ROUNDS {
        world.new_devices(50).await;
        for step in 0..STEPS_PER_ROUND {
            world.step = round * STEPS_PER_ROUND + step;
            world.random_operation().await;
        }
    }
    let played = started.elapsed();
    let owners = world.actors.len();
    world.verify_everything().await;
    let tally = &world.tally;
    println!(
        "{owners} owners, {} records; populated in {populated:.1?}, played in {:.1?}, verified in {:.1?}; {tally:?}",
        world.records.len(),
        played - populated,
        started.elapsed() - played,
    );
    // The history exercised every kind of operation, each more than a handful of times.
    for (what, count) in [
        ("reads", tally.reads),
        ("denied reads", tally.denied),
        ("shares", tally.shares),
        ("onward shares", tally.onward),
        ("revokes", tally.revokes),
        ("cascades", tally.cascaded),
        ("rotations", tally.rotations),
        ("updates", tally.updates),
        ("children queries", tally.children),
        ("refused operations", tally.refused),
        ("logins", tally.logins),
    ] {
        assert!(count >= 5, "only {count} {what}: {tally:?}");
    }
}

fn seed() -> u64 {
    let Ok(text) = std::env::var("TESSERA_E2E_SEED") else {
        return SEED;
    };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed
        .ok()
        .filter(|seed| *seed != 0)
        .unwrap_or_else(|| panic!("TESSERA_E2E_SEED={text} is not a non-zero u64"))
}

/// xorshift64*: a tiny generator with a fixed seed, so that every run plays the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())])
    }
}

struct Actor {
    owner: Owner,
    session: Session,
}

impl Actor {
    fn is_patient(&self) -> bool {
        self.owner.kind == OwnerKind::Patient
    }
}

/// One delegation of a record, as the model keeps it: who made it and what it allows. Every owner holds at most
/// one delegation of a record (the scenario never shares with an owner that has access), so a delegation is named
/// by its delegate and the delegations form a tree under the creator.
#[derive(Clone, Copy, Debug)]
struct Grant {
    from: usize,
    permission: Permission,
}

/// What the sharing history says about one record.
#[derive(Debug)]
struct Record {
    entity: EntityRef,
    creator: usize,
    content: Map<String, Value>,
    /// For a patient record: the patient it is about.
    patient: Option<usize>,
    /// For a child (a contact): its patient record.
    parent: Option<usize>,
    grants: BTreeMap<usize, Grant>,
}

impl Record {
    fn permission(&self, owner: usize) -> Option<Permission> {
        if owner == self.creator {
            Some(Permission::Write)
        } else {
            self.grants.get(&owner).map(|grant| grant.permission)
        }
    }

    fn holders(&self) -> Vec<usize> {
        std::iter::once(self.creator)
            .chain(self.grants.keys().copied())
            .collect()
    }

    /// `owner` and everyone holding the record through it: what revoking `owner` removes.
    fn subtree(&self, owner: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::from([owner]);
        let mut queue = VecDeque::from([owner]);
        while let Some(current) = queue.pop_front() {
            for (delegate, grant) in &self.grants {
                if grant.from == current && found.insert(*delegate) {
                    queue.push_back(*delegate);
                }
            }
        }
        found
    }

    /// The owners above `owner`'s delegation, from its sharer up to the creator.
    fn ancestors(&self, owner: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut current = owner;
        while let Some(grant) = self.grants.get(&current) {
            chain.push(grant.from);
            current = grant.from;
        }
        chain
    }
}

#[derive(Debug, Default)]
struct Tally {
    reads: usize,
    denied: usize,
    shares: usize,
    onward: usize,
    revokes: usize,
    cascaded: usize,
    rotations: usize,
    updates: usize,
    children: usize,
    creates: usize,
    refused: usize,
    logins: usize,
}

struct Types {
    patient: EntityType,
    contact: EntityType,
    note: EntityType,
    measurement: EntityType,
}

struct World {
    env: Env,
    actors: Vec<Actor>,
    records: Vec<Record>,
    types: Types,
    rng: Rng,
    counter: u64,
    step: usize,
    tally: Tally,
    history: Vec<String>,
}

impl World {
    /// Three HCPs; fifty patients, each registered below one of them; each patient's record kept by its HCP and
    /// shared with the patient, with a few visits; some notes; some readings patients share with their HCP.
    async fn populate() -> Self {
        let env = Env::start().await;
        let mut actors = Vec::new();
        for _ in 0..HCPS {
            let owner = env.register(OwnerKind::Hcp).await;
            let session = env.login(&owner).await;
            actors.push(Actor { owner, session });
        }
        for index in 0..PATIENTS {
            let owner = env
                .register_below(&actors[index % HCPS].session, OwnerKind::Patient)
                .await;
            // The registration right is checked; which HCP registered the patient is not kept.
            assert_eq!(
                env.store.get_owner(owner.id).unwrap().unwrap().value.parent,
                None
            );
            let session = env.login(&owner).await;
            actors.push(Actor { owner, session });
        }
        let mut world = Self {
            env,
            actors,
            records: Vec::new(),
            types: Types {
                patient: EntityType::new("Patient").unwrap(),
                contact: EntityType::new("Contact").unwrap(),
                note: EntityType::new("Note").unwrap(),
                measurement: EntityType::new("Measurement").unwrap(),
            },
            rng: Rng(seed()),
            counter: 0,
            step: 0,
            tally: Tally::default(),
            history: Vec::new(),
        };
        for patient in HCPS..HCPS + PATIENTS {
            let hcp = (patient - HCPS) % HCPS;
            let permission = if world.rng.percent(20) {
                Permission::Write
            } else {
                Permission::Read
            };
            let record = world
                .create(
                    hcp,
                    Kind::PatientRecord(patient),
                    vec![(patient, permission)],
                )
                .await;
            for _ in 0..world.rng.below(3) {
                let shares = if world.rng.percent(70) {
                    vec![(patient, Permission::Read)]
                } else {
                    Vec::new()
                };
                world.create(hcp, Kind::Contact(record), shares).await;
            }
            if world.rng.percent(40) {
                world
                    .create(patient, Kind::Measurement, vec![(hcp, Permission::Read)])
                    .await;
            }
        }
        for hcp in 0..HCPS {
            for _ in 0..3 {
                let other = (hcp + 1 + world.rng.below(HCPS - 1)) % HCPS;
                world
                    .create(hcp, Kind::Note, vec![(other, Permission::Read)])
                    .await;
            }
        }
        world
    }

    // ---- operations, each checked against the model ----

    async fn random_operation(&mut self) {
        match self.rng.below(100) {
            0..30 => self.random_read().await,
            30..52 => self.random_share().await,
            52..63 => self.random_revoke().await,
            63..67 => self.random_rotation().await,
            67..79 => self.random_update().await,
            79..86 => self.random_children().await,
            86..91 => self.random_create().await,
            91..98 => self.random_refusal().await,
            _ => {
                let who = self.rng.below(self.actors.len());
                self.new_device(who).await;
            }
        }
    }

    async fn random_read(&mut self) {
        let who = self.rng.below(self.actors.len());
        // Half the time a record the owner may read, so that both answers are frequent.
        let readable: Vec<usize> = (0..self.records.len())
            .filter(|r| self.records[*r].permission(who).is_some())
            .collect();
        let record = match self.rng.percent(50) {
            true => self.rng.pick(&readable),
            false => None,
        }
        .unwrap_or_else(|| self.rng.below(self.records.len()));
        self.check_read(who, record).await;
    }

    async fn random_share(&mut self) {
        let record = self.rng.below(self.records.len());
        let holders = self.records[record].holders();
        let sharer = self.rng.pick(&holders).unwrap();
        let candidates: Vec<usize> = (0..self.actors.len())
            .filter(|d| !holders.contains(d))
            .filter(|d| !(self.actors[sharer].is_patient() && self.actors[*d].is_patient()))
            .collect();
        let Some(delegate) = self.rng.pick(&candidates) else {
            return;
        };
        let may_write = self.records[record].permission(sharer) == Some(Permission::Write);
        let permission = if may_write && self.rng.percent(30) {
            Permission::Write
        } else {
            Permission::Read
        };
        self.note(format!(
            "{} shares {} with {} ({permission:?})",
            self.name(sharer),
            self.describe(record),
            self.name(delegate)
        ));
        let share = self.share_for(sharer, delegate, permission);
        let entity = self.records[record].entity.clone();
        let result = self.actors[sharer].session.share(&entity, &[share]).await;
        self.expect_ok(result, "share");
        if sharer != self.records[record].creator {
            self.tally.onward += 1;
        }
        self.tally.shares += 1;
        self.records[record].grants.insert(
            delegate,
            Grant {
                from: sharer,
                permission,
            },
        );
    }

    async fn random_revoke(&mut self) {
        let shared: Vec<usize> = (0..self.records.len())
            .filter(|r| !self.records[*r].grants.is_empty())
            .collect();
        let Some(record) = self.rng.pick(&shared) else {
            return;
        };
        let grantees: Vec<usize> = self.records[record].grants.keys().copied().collect();
        let delegate = self.rng.pick(&grantees).unwrap();
        // The sharer revokes what it shared; an owner named in clear can also be revoked from any delegation above.
        let revoker = if self.actors[delegate].is_patient() {
            self.records[record].grants[&delegate].from
        } else {
            let ancestors = self.records[record].ancestors(delegate);
            self.rng.pick(&ancestors).unwrap()
        };
        self.note(format!(
            "{} revokes {} from {}",
            self.name(revoker),
            self.name(delegate),
            self.describe(record)
        ));
        let entity = self.records[record].entity.clone();
        let id = self.actors[delegate].owner.id;
        let result = self.actors[revoker].session.revoke(&entity, &[id]).await;
        self.expect_ok(result, "revoke");
        let removed = self.records[record].subtree(delegate);
        self.tally.revokes += 1;
        self.tally.cascaded += removed.len() - 1;
        self.records[record]
            .grants
            .retain(|owner, _| !removed.contains(owner));
    }

    async fn random_rotation(&mut self) {
        let shared: Vec<usize> = (0..self.records.len())
            .filter(|r| !self.records[*r].grants.is_empty())
            .collect();
        let Some(record) = self.rng.pick(&shared) else {
            return;
        };
        let creator = self.records[record].creator;
        // The creator finds the delegations it made, and those naming their delegate in clear.
        let candidates: Vec<usize> = self.records[record]
            .grants
            .iter()
            .filter(|(delegate, grant)| {
                grant.from == creator || !self.actors[**delegate].is_patient()
            })
            .map(|(delegate, _)| *delegate)
            .collect();
        let Some(delegate) = self.rng.pick(&candidates) else {
            return;
        };
        self.note(format!(
            "{} revokes {} from {} and rotates its key",
            self.name(creator),
            self.name(delegate),
            self.describe(record)
        ));
        let entity = self.records[record].entity.clone();
        let id = self.actors[delegate].owner.id;
        let result = self.actors[creator]
            .session
            .revoke_and_rotate(&entity, &[id])
            .await;
        let rotated = self.expect_ok(result, "revoke and rotate");
        // The revoked subtree goes, and so does every delegation the creator did not make: it cannot re-wrap the
        // new key for them (their sharers must share again).
        let model = &mut self.records[record];
        let mut removed = model.subtree(delegate);
        removed.extend(
            model
                .grants
                .iter()
                .filter(|(_, grant)| grant.from != creator)
                .map(|(owner, _)| *owner),
        );
        assert_eq!(rotated.removed, removed.len(), "{}", self.context());
        let model = &mut self.records[record];
        model.grants.retain(|owner, _| !removed.contains(owner));
        self.tally.rotations += 1;
    }

    async fn random_update(&mut self) {
        let record = self.rng.below(self.records.len());
        let writers: Vec<usize> = self.records[record]
            .holders()
            .into_iter()
            .filter(|w| self.records[record].permission(*w) == Some(Permission::Write))
            .collect();
        let writer = self.rng.pick(&writers).unwrap();
        let content = self.content("update");
        self.note(format!(
            "{} updates {}",
            self.name(writer),
            self.describe(record)
        ));
        let entity = self.records[record].entity.clone();
        let session = &self.actors[writer].session;
        let read = session.get_json(&entity).await;
        let read = self.expect_ok(read, "read before update");
        assert_eq!(
            read.content,
            self.records[record].content,
            "{}",
            self.context()
        );
        let result = self.actors[writer]
            .session
            .update_json(&entity, read.rev, content.clone())
            .await;
        self.expect_ok(result, "update");
        self.records[record].content = content;
        self.tally.updates += 1;
    }

    async fn random_children(&mut self) {
        let records: Vec<usize> = (0..self.records.len())
            .filter(|r| self.records[*r].patient.is_some())
            .collect();
        let record = self.rng.pick(&records).unwrap();
        let who = if self.rng.percent(50) {
            self.rng.pick(&self.records[record].holders()).unwrap()
        } else {
            self.rng.below(self.actors.len())
        };
        self.check_children(who, record).await;
    }

    async fn random_create(&mut self) {
        let creator = self.rng.below(self.actors.len());
        if self.actors[creator].is_patient() {
            let shares = match self.rng.percent(70) {
                true => vec![(self.rng.below(HCPS), Permission::Read)],
                false => Vec::new(),
            };
            self.create(creator, Kind::Measurement, shares).await;
            return;
        }
        let parents: Vec<usize> = (0..self.records.len())
            .filter(|r| {
                self.records[*r].patient.is_some() && self.records[*r].permission(creator).is_some()
            })
            .collect();
        match self.rng.pick(&parents) {
            Some(parent) if self.rng.percent(60) => {
                let patient = self.records[parent].patient.unwrap();
                let shares = match self.rng.percent(50) {
                    true => vec![(patient, Permission::Read)],
                    false => Vec::new(),
                };
                self.create(creator, Kind::Contact(parent), shares).await;
            }
            _ => {
                let other = (creator + 1 + self.rng.below(HCPS - 1)) % HCPS;
                self.create(creator, Kind::Note, vec![(other, Permission::Write)])
                    .await;
            }
        }
    }

    /// An owner tries what the sharing history does not allow; the answer is a refusal and nothing changes.
    async fn random_refusal(&mut self) {
        let record = self.rng.below(self.records.len());
        let model = &self.records[record];
        let holders = model.holders();
        let readers: Vec<usize> = model
            .grants
            .iter()
            .filter(|(_, grant)| grant.permission == Permission::Read)
            .map(|(owner, _)| *owner)
            .collect();
        let entity = model.entity.clone();
        match self.rng.below(4) {
            // A reader writes.
            0 => {
                let Some(reader) = self.rng.pick(&readers) else {
                    return;
                };
                self.note(format!(
                    "{} tries to update {}",
                    self.name(reader),
                    self.describe(record)
                ));
                let session = &self.actors[reader].session;
                let rev = session.get_json(&entity).await.unwrap().rev;
                let error = session
                    .update_json(&entity, rev, self.records[record].content.clone())
                    .await
                    .unwrap_err();
                assert!(error.is_forbidden(), "{error:?}\n{}", self.context());
            }
            // A reader grants write.
            1 => {
                let Some(reader) = self.rng.pick(&readers) else {
                    return;
                };
                let Some(delegate) = (0..HCPS).find(|d| !holders.contains(d)) else {
                    return;
                };
                self.note(format!(
                    "{} tries to grant write on {}",
                    self.name(reader),
                    self.describe(record)
                ));
                let share = self.share_for(reader, delegate, Permission::Write);
                let session = &self.actors[reader].session;
                let error = session.share(&entity, &[share]).await.unwrap_err();
                assert!(error.is_rule(), "{error:?}\n{}", self.context());
            }
            // An owner that is not above a delegation revokes it.
            2 => {
                let named: Vec<usize> = model
                    .grants
                    .keys()
                    .copied()
                    .filter(|d| !self.actors[*d].is_patient())
                    .collect();
                let Some(delegate) = self.rng.pick(&named) else {
                    return;
                };
                let ancestors = model.ancestors(delegate);
                let outsiders: Vec<usize> = holders
                    .iter()
                    .copied()
                    .filter(|h| *h != delegate && !ancestors.contains(h))
                    .collect();
                let Some(revoker) = self.rng.pick(&outsiders) else {
                    return;
                };
                self.note(format!(
                    "{} tries to revoke {} from {}",
                    self.name(revoker),
                    self.name(delegate),
                    self.describe(record)
                ));
                let id = self.actors[delegate].owner.id;
                let error = self.actors[revoker]
                    .session
                    .revoke(&entity, &[id])
                    .await
                    .unwrap_err();
                assert!(error.is_rule(), "{error:?}\n{}", self.context());
            }
            // A writer that is not the creator rotates the key.
            _ => {
                let writers: Vec<usize> = model
                    .grants
                    .iter()
                    .filter(|(_, grant)| grant.permission == Permission::Write)
                    .map(|(owner, _)| *owner)
                    .collect();
                let Some(writer) = self.rng.pick(&writers) else {
                    return;
                };
                let named: Vec<usize> = model
                    .grants
                    .keys()
                    .copied()
                    .filter(|d| *d != writer && !self.actors[*d].is_patient())
                    .collect();
                let Some(delegate) = self.rng.pick(&named) else {
                    return;
                };
                self.note(format!(
                    "{} tries to rotate {}",
                    self.name(writer),
                    self.describe(record)
                ));
                let id = self.actors[delegate].owner.id;
                let error = self.actors[writer]
                    .session
                    .revoke_and_rotate(&entity, &[id])
                    .await
                    .unwrap_err();
                assert!(error.is_rule(), "{error:?}\n{}", self.context());
            }
        }
        self.tally.refused += 1;
    }

    /// New sessions for about `percent` % of the owners, from their key files, as new devices would open them.
    async fn new_devices(&mut self, percent: u64) {
        for who in 0..self.actors.len() {
            if self.rng.percent(percent) {
                self.new_device(who).await;
            }
        }
    }

    /// A new session of `who` from its key file: it opens every exchange data naming the owner, from the key bag
    /// (no RSA) or, for exchange data new to the owner, from its inbox with its private key, after which the bag holds
    /// them all and the inbox is empty; none is left unopened.
    async fn new_device(&mut self, who: usize) {
        self.note(format!("{} logs in on a new device", self.name(who)));
        let session = self.env.login(&self.actors[who].owner).await;
        let stats = session.stats();
        let owner = &self.actors[who].owner;
        let stored = common::exchange_entries(&self.env.store, owner).len();
        assert!(self.env.store.inbox(owner.id).unwrap().is_empty());
        assert_eq!(
            stats.key_bag_entries + stats.opened_with_rsa,
            stored,
            "{stats:?}\n{}",
            self.context()
        );
        assert_eq!(stats.unopened_exchange_data, 0);
        self.actors[who].session = session;
        self.tally.logins += 1;
    }

    async fn create(
        &mut self,
        creator: usize,
        kind: Kind,
        shares: Vec<(usize, Permission)>,
    ) -> usize {
        let (entity_type, patient, parent) = match kind {
            Kind::PatientRecord(patient) => (self.types.patient.clone(), Some(patient), None),
            Kind::Contact(parent) => (self.types.contact.clone(), None, Some(parent)),
            Kind::Note => (self.types.note.clone(), None, None),
            Kind::Measurement => (self.types.measurement.clone(), None, None),
        };
        let content = self.content(entity_type.as_str());
        let mut new = NewRecord::new(entity_type.clone(), content.clone());
        if let Some(parent) = parent {
            new = new.child_of(self.records[parent].entity.clone());
        }
        for (delegate, permission) in &shares {
            new = new.share_with(self.share_for(creator, *delegate, *permission));
        }
        let result = self.actors[creator].session.create_record(new).await;
        let saved = self.expect_ok(result, "create");
        self.records.push(Record {
            entity: saved.entity,
            creator,
            content,
            patient,
            parent,
            grants: shares
                .into_iter()
                .map(|(delegate, permission)| {
                    (
                        delegate,
                        Grant {
                            from: creator,
                            permission,
                        },
                    )
                })
                .collect(),
        });
        self.note(format!(
            "{} creates {}",
            self.name(creator),
            self.describe(self.records.len() - 1)
        ));
        self.tally.creates += 1;
        self.records.len() - 1
    }

    // ---- checks ----

    /// `who` reads `record`: the last content with the permission granted, or not found when not granted.
    async fn check_read(&mut self, who: usize, record: usize) {
        let entity = self.records[record].entity.clone();
        let result = self.actors[who].session.get_json(&entity).await;
        let model = &self.records[record];
        match (model.permission(who), result) {
            (Some(permission), Ok(read)) => {
                assert_eq!(read.content, model.content, "{}", self.context());
                assert_eq!(read.permission, permission, "{}", self.context());
                let parents: Vec<EntityId> = model
                    .parent
                    .map(|p| self.records[p].entity.id)
                    .into_iter()
                    .collect();
                assert_eq!(read.parents, parents, "{}", self.context());
                self.tally.reads += 1;
            }
            (None, Err(error)) if error.is_not_found() => self.tally.denied += 1,
            (expected, got) => panic!(
                "{} reads {}: expected {expected:?}, got {got:?}\n{}",
                self.name(who),
                self.describe(record),
                self.context()
            ),
        }
    }

    /// `who` lists the contacts of patient record `record`: exactly those it may read, or not found.
    async fn check_children(&mut self, who: usize, record: usize) {
        let entity = self.records[record].entity.clone();
        let result = self.actors[who]
            .session
            .children_json(&entity, &self.types.contact)
            .await;
        if self.records[record].permission(who).is_none() {
            let error = result.unwrap_err();
            assert!(error.is_not_found(), "{error:?}\n{}", self.context());
            return;
        }
        let found: BTreeMap<EntityId, Map<String, Value>> = result
            .unwrap_or_else(|error| panic!("{error:?}\n{}", self.context()))
            .into_iter()
            .map(|child| (child.entity.id, child.content))
            .collect();
        let expected: BTreeMap<EntityId, Map<String, Value>> = self
            .records
            .iter()
            .filter(|r| r.parent == Some(record) && r.permission(who).is_some())
            .map(|r| (r.entity.id, r.content.clone()))
            .collect();
        assert_eq!(
            found,
            expected,
            "{} lists the contacts of {}\n{}",
            self.name(who),
            self.describe(record),
            self.context()
        );
        self.tally.children += 1;
    }

    /// Every owner on a new device reads every record; some list contacts; then the stored data and the database
    /// file are checked for links and plaintext (P6), with the owners' keys as ground truth.
    async fn verify_everything(&mut self) {
        self.step = ROUNDS * STEPS_PER_ROUND;
        self.new_devices(100).await;
        for who in 0..self.actors.len() {
            for record in 0..self.records.len() {
                self.check_read(who, record).await;
            }
        }
        let patient_records: Vec<usize> = (0..self.records.len())
            .filter(|r| self.records[*r].patient.is_some())
            .collect();
        for record in patient_records {
            let patient = self.records[record].patient.unwrap();
            let outsider = self.rng.below(self.actors.len());
            for who in [self.records[record].creator, patient, outsider] {
                self.check_children(who, record).await;
            }
        }

        // Exchange data was created once per ordered pair and reused by every later session of the delegator.
        let owners: Vec<&Owner> = self.actors.iter().map(|a| &a.owner).collect();
        let types = [
            self.types.patient.clone(),
            self.types.contact.clone(),
            self.types.note.clone(),
            self.types.measurement.clone(),
        ];
        let ledger = Ledger::build(&self.env.store, &owners, &types);
        let per_pair = ledger.exchange_per_pair();
        assert!(
            per_pair.values().all(|count| *count == 1),
            "several exchange data for one pair: {per_pair:?}"
        );
        let patients: BTreeSet<_> = self
            .actors
            .iter()
            .filter(|a| a.is_patient())
            .map(|a| a.owner.id)
            .collect();
        let files: Vec<PatientFile> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(index, record)| {
                let patient = record.patient?;
                let contacts: Vec<EntityId> = self
                    .records
                    .iter()
                    .filter(|r| r.parent == Some(index))
                    .map(|r| r.entity.id)
                    .collect();
                let mut children = BTreeMap::new();
                if !contacts.is_empty() {
                    children.insert(self.types.contact.clone(), contacts);
                }
                Some(PatientFile {
                    patient: self.actors[patient].owner.id,
                    record: record.entity.id,
                    children,
                })
            })
            .collect();
        let entities: Vec<EntityId> = self.records.iter().map(|r| r.entity.id).collect();
        let report = assert_no_links(&self.env, &ledger, &entities, &patients, &files);
        assert_eq!(report.entities, self.records.len());
        assert!(report.anonymous_delegations > 100, "{report:?}");
        let (types_per_pair, pairs_per_type) = report.spread();
        assert!(types_per_pair >= 2 && pairs_per_type >= 10, "{report:?}");

        // The sessions go first, with their pooled connections, so that the server shuts down at once.
        self.actors.clear();
        let database = self.env.stop().await;
        assert_eq!(
            occurrences(&database, &[MARKER.as_bytes().to_vec()]),
            BTreeSet::new(),
            "a sensitive value is in the database file in clear"
        );
    }

    // ---- helpers ----

    /// Fresh content: every sensitive value starts with [`MARKER`].
    fn content(&mut self, what: &str) -> Map<String, Value> {
        self.counter += 1;
        let word = self.rng.next() % 10_000;
        common::object(json!({
            "n": self.counter,
            "text": format!("{MARKER}{:06}-{what}-{word}", self.counter),
        }))
    }

    /// A share that never names a patient: a patient receiving is an anonymous delegate, a patient sharing an
    /// anonymous delegator; between HCPs both are named.
    fn share_for(&self, sharer: usize, delegate: usize, permission: Permission) -> Share {
        let visibility = match (
            self.actors[sharer].is_patient(),
            self.actors[delegate].is_patient(),
        ) {
            (false, false) => Visibility::Explicit,
            (false, true) => Visibility::AnonymousDelegate,
            (true, false) => Visibility::AnonymousDelegator,
            (true, true) => panic!("the scenario never shares between patients"),
        };
        Share {
            delegate: self.actors[delegate].owner.id,
            permission,
            visibility,
        }
    }

    fn expect_ok<T>(&self, result: tessera::Result<T>, what: &str) -> T {
        result.unwrap_or_else(|error| panic!("{what} failed: {error:?}\n{}", self.context()))
    }

    fn name(&self, who: usize) -> String {
        if who < HCPS {
            format!("hcp{who}")
        } else {
            format!("patient{}", who - HCPS)
        }
    }

    fn describe(&self, record: usize) -> String {
        let model = &self.records[record];
        let grants: Vec<String> = model
            .grants
            .iter()
            .map(|(delegate, grant)| {
                format!(
                    "{}<-{}:{:?}",
                    self.name(*delegate),
                    self.name(grant.from),
                    grant.permission
                )
            })
            .collect();
        format!(
            "record {record} ({} of {}, shared {})",
            model.entity.entity_type,
            self.name(model.creator),
            grants.join(" ")
        )
    }

    fn note(&mut self, line: String) {
        self.history.push(format!("step {}: {line}", self.step));
    }

    /// The seed, the last operations, and every operation on the record of the last one.
    fn context(&self) -> String {
        let last = &self.history[self.history.len().saturating_sub(HISTORY)..];
        let mut text = format!(
            "seed {:#x}, last operations:\n  {}",
            seed(),
            last.join("\n  ")
        );
        let record = last.last().and_then(|line| {
            let (_, rest) = line.split_once(" record ")?;
            rest.split_once(' ')
                .map(|(number, _)| format!(" record {number} "))
        });
        if let Some(record) = record {
            let lines: Vec<&str> = self
                .history
                .iter()
                .filter(|line| line.contains(&record))
                .map(String::as_str)
                .collect();
            text.push_str(&format!("\nhistory of{record}:\n  {}", lines.join("\n  ")));
        }
        text
    }
}

/// What to create.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A patient's record, about this patient.
    PatientRecord(usize),
    /// A contact, child of this patient record.
    Contact(usize),
    Note,
    Measurement,
}

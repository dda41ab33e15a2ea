//! Fixtures shared by the tests and benchmarks of the layers above keys (feature `test-utils`, never in the default
//! API): four owners with exchange data between every ordered pair, opened by both parties.
//!
//! Three owners derive their keys from the fixture RSA keys of `tessera-primitives` (see
//! [`tessera_keys::test_utils`]), so only the patient's key is generated: building a world stays fast in debug
//! builds. A test binary builds its world once and shares it between its tests.

use std::collections::BTreeMap;

use tessera_keys::test_utils::fixture_rsa;
use tessera_keys::{
    ExchangeData, ExchangeSecret, OwnerId, OwnerKeys, Tofu, TrustPolicy, TrustedBundle,
};
use tessera_primitives::RsaKeySize;

use crate::AccessIndex;

/// Creation time of every bundle and exchange data of a [`World`].
pub const T0: u64 = 1_700_000_000;

/// Why a [`World`] could not be built: a fixture key could not be loaded, or the key layer refused an operation.
pub type FixtureError = Box<dyn std::error::Error + Send + Sync>;

/// The owners of a [`World`]: three healthcare parties and a patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    /// HCP A (fixture key `rsa2048.pem`).
    A,
    /// HCP B (fixture key `rsa3072.pem`).
    B,
    /// HCP C (fixture key `rsa4096.pem`).
    C,
    /// Patient P (a freshly generated 2048-bit key).
    P,
}

impl Who {
    /// Every owner.
    pub const ALL: [Self; 4] = [Self::A, Self::B, Self::C, Self::P];

    /// The owner's fixed id (fixed so that failures reproduce; the patient's is the ASCII `patient-owner-id`,
    /// easy to spot in a dump).
    pub fn id(self) -> OwnerId {
        OwnerId::from_bytes(match self {
            Self::A => [0xa1; 16],
            Self::B => [0xb0; 16],
            Self::C => [0xc0; 16],
            Self::P => *b"patient-owner-id",
        })
    }

    /// The owner's keys: derived from its fixture key, or generated for the patient, with a bundle created at
    /// [`T0`].
    ///
    /// # Errors
    /// If the fixture key cannot be loaded or the keys cannot be derived or generated.
    pub fn keys(self) -> Result<OwnerKeys, FixtureError> {
        let fixture = match self {
            Self::A => "rsa2048.pem",
            Self::B => "rsa3072.pem",
            Self::C => "rsa4096.pem",
            Self::P => return Ok(OwnerKeys::generate(self.id(), RsaKeySize::Bits2048, T0)?),
        };
        Ok(OwnerKeys::derive(self.id(), fixture_rsa(fixture)?, T0)?)
    }
}

/// Four owners and exchange data between every ordered pair, opened by both parties.
pub struct World {
    keys: BTreeMap<Who, OwnerKeys>,
    bundles: BTreeMap<Who, TrustedBundle>,
    data: BTreeMap<(Who, Who), ExchangeData>,
    /// `(holder, delegator, delegate)` → the holder's opened secret.
    secrets: BTreeMap<(Who, Who, Who), ExchangeSecret>,
}

impl World {
    /// Builds the world: every owner's keys, its bundle accepted through trust on first use, and exchange data
    /// for every ordered pair (an owner with itself included), opened by the delegate too.
    ///
    /// # Errors
    /// If a fixture key cannot be loaded or the key layer refuses an operation.
    pub fn build() -> Result<Self, FixtureError> {
        let trust = Tofu::new();
        let mut keys = BTreeMap::new();
        let mut bundles = BTreeMap::new();
        for who in Who::ALL {
            let owner = who.keys()?;
            bundles.insert(who, trust.trust(owner.bundle()?)?);
            keys.insert(who, owner);
        }
        let mut data = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for (from, delegator) in &keys {
            for (to, delegate) in &keys {
                let recipients: Vec<&TrustedBundle> = if from == to {
                    Vec::new()
                } else {
                    bundles.get(to).into_iter().collect()
                };
                let (exchange, own) = ExchangeData::create(delegator, to.id(), &recipients, T0)?;
                if from != to {
                    let bundle = bundles.get(from).ok_or("a bundle of every owner")?;
                    secrets.insert((*to, *from, *to), exchange.open(delegate, &[bundle])?);
                }
                secrets.insert((*from, *from, *to), own);
                data.insert((*from, *to), exchange);
            }
        }
        Ok(Self {
            keys,
            bundles,
            data,
            secrets,
        })
    }

    /// `who`'s keys.
    pub fn keys(&self, who: Who) -> Option<&OwnerKeys> {
        self.keys.get(&who)
    }

    /// `who`'s trusted bundle.
    pub fn bundle(&self, who: Who) -> Option<&TrustedBundle> {
        self.bundles.get(&who)
    }

    /// The exchange data from `from` to `to`.
    pub fn data(&self, from: Who, to: Who) -> Option<&ExchangeData> {
        self.data.get(&(from, to))
    }

    /// The secret of the exchange data `from` → `to` as `holder` opened it; `None` unless `holder` is one of
    /// the two.
    pub fn secret(&self, holder: Who, from: Who, to: Who) -> Option<&ExchangeSecret> {
        self.secrets.get(&(holder, from, to))
    }

    /// Every secret `who` holds, as delegator or delegate.
    pub fn secrets_of(&self, who: Who) -> Vec<ExchangeSecret> {
        self.secrets
            .iter()
            .filter(|((holder, _, _), _)| *holder == who)
            .map(|(_, secret)| secret.clone())
            .collect()
    }

    /// `who`'s access index over every secret it holds.
    pub fn access(&self, who: Who) -> AccessIndex {
        AccessIndex::new(who.id(), self.secrets_of(who))
            .with_signers(self.bundles.values().cloned())
    }
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").finish_non_exhaustive()
    }
}

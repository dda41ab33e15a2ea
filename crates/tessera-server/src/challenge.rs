//! Stateless login challenges: a challenge is a MAC under a per-process key over the owner, an expiry and a nonce,
//! so issuing one stores nothing and no flood of requests can crowd out anyone's login. Only challenges that were
//! *used* in a successful login are remembered (until they expire), to refuse a replay.
//!
//! Layout of the 32 bytes (opaque to clients, who sign them as they are; docs/formats.md, "Login challenge"):
//!
//! ```text
//! challenge = expiry (8, big-endian milliseconds since the server started) ‖ nonce (8, random)
//!             ‖ HMAC-SHA-256(server key, "tessera/server/challenge" ‖ 0x00 ‖ owner id (16) ‖ expiry ‖ nonce)[..16]
//! ```
//!
//! The key is drawn from the operating system when the server starts and never leaves the process: a restart
//! invalidates the challenges in flight (a client asks for a new one) and, with them, the record of used ones, so
//! a replay after a restart fails the MAC rather than slipping past an emptied record.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tessera_keys::OwnerId;
use zeroize::Zeroizing;

/// How long a challenge may be answered.
pub(crate) const CHALLENGE_LIFETIME: Duration = Duration::from_secs(60);
/// Most successful logins of one owner within [`CHALLENGE_LIFETIME`]; only a holder of the owner's key can use
/// them up, so this bounds the record of used challenges without letting anyone else lock the owner out.
pub(crate) const MAX_LOGINS_PER_OWNER: usize = 1024;
/// Most used challenges remembered in total (about 64 MiB at most, reached only by that many successful logins).
const MAX_USED: usize = 1 << 20;
/// Domain separation of the challenge MAC.
const LABEL: &[u8] = b"tessera/server/challenge\0";
/// Bytes of the MAC kept in a challenge (128 bits: a forgery succeeds with probability 2^-128 per attempt).
const TAG_LEN: usize = 16;

/// Issues and checks login challenges (see the module documentation).
pub(crate) struct Challenges {
    key: Zeroizing<[u8; 32]>,
    epoch: Instant,
    used: Mutex<Used>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Why a correctly signed challenge was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The challenge was already used for a login.
    Replayed,
    /// The owner (or, in total, every owner) logged in too often within a challenge lifetime.
    TooMany,
}

/// Challenges used in successful logins, per owner, with their expiry (milliseconds since the epoch).
#[derive(Debug, Default)]
struct Used {
    by_owner: HashMap<OwnerId, Vec<([u8; 32], u64)>>,
    total: usize,
    last_sweep: u64,
}

impl Challenges {
    /// Draws a fresh key from the operating system.
    ///
    /// # Errors
    /// If the operating system's generator fails.
    pub(crate) fn generate() -> std::io::Result<Self> {
        let key = tessera_primitives::random_array::<32>()
            .map_err(|_| std::io::Error::other("the operating system's random generator failed"))?;
        Ok(Self {
            key: Zeroizing::new(key),
            epoch: Instant::now(),
            used: Mutex::new(Used::default()),
        })
    }

    /// A challenge for `owner`, valid for [`CHALLENGE_LIFETIME`]. Stores nothing.
    pub(crate) fn issue(&self, owner: OwnerId) -> Option<[u8; 32]> {
        let nonce = tessera_primitives::random_array::<8>().ok()?;
        let expiry = self
            .now()
            .saturating_add(millis(CHALLENGE_LIFETIME))
            .to_be_bytes();
        Some(assemble(&expiry, &nonce, &self.tag(owner, &expiry, &nonce)))
    }

    /// Whether `challenge` was issued by this server to `owner` and has not expired (it may have been used: see
    /// [`Challenges::consume`], called once the signature verified).
    pub(crate) fn is_valid(&self, owner: OwnerId, challenge: &[u8; 32]) -> bool {
        let (expiry, rest) = challenge.split_at(8);
        let (nonce, tag) = rest.split_at(8);
        let expected = self.tag(owner, expiry, nonce);
        let genuine = tessera_primitives::constant_time_eq(tag, truncated(&expected));
        genuine && self.now() < expiry_of(challenge)
    }

    /// Records `challenge` as used by `owner`, refusing it if it was used before or the owner's (or the server's)
    /// record is full. Call only after the login's signature verified, so that nobody but the owner can fill the
    /// owner's record.
    pub(crate) fn consume(&self, owner: OwnerId, challenge: &[u8; 32]) -> Result<(), Refused> {
        let now = self.now();
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.sweep(now);
        let Used {
            by_owner, total, ..
        } = &mut *used;
        let entries = by_owner.entry(owner).or_default();
        let before = entries.len();
        entries.retain(|(_, expiry)| *expiry > now);
        *total = total.saturating_sub(before.saturating_sub(entries.len()));
        if entries.iter().any(|(seen, _)| seen == challenge) {
            return Err(Refused::Replayed);
        }
        if entries.len() >= MAX_LOGINS_PER_OWNER || *total >= MAX_USED {
            return Err(Refused::TooMany);
        }
        entries.push((*challenge, expiry_of(challenge)));
        *total = total.saturating_add(1);
        Ok(())
    }

    /// Milliseconds since the server started.
    fn now(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn tag(&self, owner: OwnerId, expiry: &[u8], nonce: &[u8]) -> [u8; 32] {
        let mut message = Vec::with_capacity(LABEL.len() + 32);
        message.extend_from_slice(LABEL);
        message.extend_from_slice(owner.as_bytes());
        message.extend_from_slice(expiry);
        message.extend_from_slice(nonce);
        tessera_primitives::hmac_sha256(self.key.as_slice(), &message)
    }
}

impl Used {
    /// Forgets every expired challenge, at most once a second (each login prunes its own owner's anyway).
    fn sweep(&mut self, now: u64) {
        if now.saturating_sub(self.last_sweep) < 1000 {
            return;
        }
        self.last_sweep = now;
        self.by_owner.retain(|_, entries| {
            entries.retain(|(_, expiry)| *expiry > now);
            !entries.is_empty()
        });
        self.total = self.by_owner.values().map(Vec::len).sum();
    }
}

/// `expiry ‖ nonce ‖ tag`, the tag truncated to [`TAG_LEN`] bytes.
fn assemble(expiry: &[u8; 8], nonce: &[u8; 8], tag: &[u8; 32]) -> [u8; 32] {
    let mut challenge = [0u8; 32];
    let parts = expiry.iter().chain(nonce).chain(truncated(tag));
    for (slot, byte) in challenge.iter_mut().zip(parts) {
        *slot = *byte;
    }
    challenge
}

/// The first [`TAG_LEN`] bytes of a MAC.
fn truncated(tag: &[u8; 32]) -> &[u8] {
    tag.first_chunk::<TAG_LEN>()
        .map_or(&[], |head| head.as_slice())
}

/// The expiry written in a challenge's first eight bytes.
fn expiry_of(challenge: &[u8; 32]) -> u64 {
    challenge
        .first_chunk::<8>()
        .map_or(0, |expiry| u64::from_be_bytes(*expiry))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    fn owner(byte: u8) -> OwnerId {
        OwnerId::from_bytes([byte; 16])
    }

    #[test]
    fn a_challenge_is_bound_to_its_owner_and_this_server() {
        let challenges = Challenges::generate().unwrap();
        let challenge = challenges.issue(owner(1)).unwrap();
        assert!(challenges.is_valid(owner(1), &challenge));
        assert!(!challenges.is_valid(owner(2), &challenge));
        assert!(
            !Challenges::generate()
                .unwrap()
                .is_valid(owner(1), &challenge)
        );
        for index in 0..32 {
            let mut tampered = challenge;
            tampered[index] ^= 1;
            assert!(!challenges.is_valid(owner(1), &tampered), "byte {index}");
        }
    }

    #[test]
    fn an_expired_challenge_is_refused() {
        let challenges = Challenges::generate().unwrap();
        let nonce = [7u8; 8];
        let made = |expiry: u64| {
            let expiry = expiry.to_be_bytes();
            assemble(&expiry, &nonce, &challenges.tag(owner(1), &expiry, &nonce))
        };
        std::thread::sleep(Duration::from_millis(2));
        assert!(challenges.is_valid(owner(1), &made(u64::MAX)));
        assert!(!challenges.is_valid(owner(1), &made(1)));
    }

    #[test]
    fn a_challenge_is_used_once_and_an_owner_has_a_bound() {
        let challenges = Challenges::generate().unwrap();
        let first = challenges.issue(owner(1)).unwrap();
        assert_eq!(challenges.consume(owner(1), &first), Ok(()));
        assert_eq!(challenges.consume(owner(1), &first), Err(Refused::Replayed));
        for _ in 1..MAX_LOGINS_PER_OWNER {
            let next = challenges.issue(owner(1)).unwrap();
            assert_eq!(challenges.consume(owner(1), &next), Ok(()));
        }
        let over = challenges.issue(owner(1)).unwrap();
        assert_eq!(challenges.consume(owner(1), &over), Err(Refused::TooMany));
        // Another owner is not affected.
        let other = challenges.issue(owner(2)).unwrap();
        assert_eq!(challenges.consume(owner(2), &other), Ok(()));
    }

    #[test]
    fn the_key_never_prints() {
        let challenges = Challenges::generate().unwrap();
        let printed = format!("{challenges:?}");
        assert!(printed.contains("[redacted]"));
        assert!(!printed.contains(&format!("{:?}", challenges.key.as_slice())));
    }
}

//! Randomness from the operating system's CSPRNG.
//!
//! Keys and secrets are drawn straight from the operating system ([`fill`], [`array`]). Nonces, which must be
//! unique but are not secret, come from [`nonce`]: inside a [`NonceBatch`] (an operation that seals many values,
//! such as creating a thousand records) they are cut from blocks drawn from the operating system, so that the
//! operation costs a few system calls instead of one per sealed value; outside one, each is drawn directly.
//!
//! A batch is a scope on one thread and its pool is wiped when the scope ends, so no pooled byte outlives the
//! operation: a process that forks cannot hand the same bytes out in parent and child unless the operation itself
//! forks, which none does (a pool kept for the life of a thread would need a fork check, a system call per draw).

use std::cell::RefCell;
use std::marker::PhantomData;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Fills `dest` with bytes from the operating system's cryptographically secure random number generator.
///
/// # Errors
/// [`Error::Randomness`] if the generator fails.
pub fn fill(dest: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(dest)
        .map_err(|_| Error::Randomness)
}

/// Returns `N` random bytes from the operating system's generator.
///
/// # Errors
/// [`Error::Randomness`] if the generator fails.
pub fn array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// Bytes of operating-system randomness one refill of a batch's pool draws (64 nonces of 12 bytes).
const NONCE_POOL_LEN: usize = 768;

/// A thread's pool of operating-system randomness for the nonces of the open [`NonceBatch`]es: each byte is
/// handed out once and wiped.
struct NoncePool {
    bytes: [u8; NONCE_POOL_LEN],
    /// Bytes already handed out (from the start of `bytes`).
    used: usize,
    /// Open batches on this thread; the pool is used only while one is open.
    depth: usize,
}

thread_local! {
    static NONCE_POOL: RefCell<NoncePool> = const {
        RefCell::new(NoncePool { bytes: [0; NONCE_POOL_LEN], used: NONCE_POOL_LEN, depth: 0 })
    };
}

/// While alive, the nonces of sealed boxes made on this thread are cut from blocks of operating-system randomness
/// instead of costing one system call each. Open one around an operation that seals many values; its pool is wiped
/// when the last open batch of the thread ends. Not `Send`: a batch belongs to its thread.
#[must_use = "the batch ends when dropped"]
pub struct NonceBatch(PhantomData<*const ()>);

impl NonceBatch {
    /// Opens a batch on this thread (batches nest).
    pub fn begin() -> Self {
        NONCE_POOL.with(|pool| pool.borrow_mut().depth += 1);
        Self(PhantomData)
    }
}

impl Drop for NonceBatch {
    fn drop(&mut self) {
        NONCE_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            pool.depth = pool.depth.saturating_sub(1);
            if pool.depth == 0 {
                pool.bytes.zeroize();
                pool.used = NONCE_POOL_LEN;
            }
        });
    }
}

impl std::fmt::Debug for NonceBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceBatch")
    }
}

/// Returns `N` bytes for a nonce, unique with overwhelming probability: from the pool of the open
/// [`NonceBatch`] on this thread, or straight from the operating system outside one.
///
/// # Security
/// For nonces and other public unique values only: keys come from [`fill`] or [`array`], so that no future key
/// waits in memory.
///
/// # Errors
/// [`Error::Randomness`] if the generator fails.
pub(crate) fn nonce<const N: usize>() -> Result<[u8; N]> {
    const { assert!(N <= NONCE_POOL_LEN) };
    NONCE_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.depth == 0 {
            return array();
        }
        if pool.used + N > NONCE_POOL_LEN {
            fill(&mut pool.bytes)?;
            pool.used = 0;
        }
        let start = pool.used;
        let mut out = [0u8; N];
        let taken = pool
            .bytes
            .get_mut(start..start + N)
            .ok_or(Error::Randomness)?;
        out.copy_from_slice(taken);
        taken.zeroize();
        pool.used = start + N;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ() -> crate::Result<()> {
        assert_ne!(super::array::<16>()?, super::array::<16>()?);
        Ok(())
    }

    #[test]
    fn nonces_never_repeat_inside_or_outside_a_batch() -> crate::Result<()> {
        let mut seen = std::collections::HashSet::new();
        let mut draw = || -> crate::Result<()> {
            assert!(
                seen.insert(super::nonce::<12>()?),
                "a nonce was handed out twice"
            );
            Ok(())
        };
        draw()?;
        {
            let _outer = super::NonceBatch::begin();
            for _ in 0..(3 * super::NONCE_POOL_LEN / 12 + 5) {
                draw()?;
            }
            let inner = super::NonceBatch::begin();
            draw()?;
            drop(inner);
            draw()?;
        }
        draw()?;
        super::NONCE_POOL.with(|pool| {
            let pool = pool.borrow();
            assert_eq!(pool.depth, 0);
            assert!(
                pool.bytes.iter().all(|b| *b == 0),
                "the pool is wiped when the batch ends"
            );
        });
        Ok(())
    }
}

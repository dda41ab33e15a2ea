//! Randomness from the operating system's CSPRNG.

use ring::rand::{SecureRandom, SystemRandom};

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

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ() -> crate::Result<()> {
        assert_ne!(super::array::<16>()?, super::array::<16>()?);
        Ok(())
    }
}

//! The one clock of the client layers: seconds since the Unix epoch, as the `created` fields of key bundles and
//! exchange data hold them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now (0 if the system clock is set before 1970): the unit of every timestamp in
/// Tessera's formats (`created` of key bundles and exchange data, session expiry on the server).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_is_past_2020() {
        assert!(super::unix_now() > 1_577_836_800);
    }
}

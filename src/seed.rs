//! The one place a notebook's seed comes from.

use crate::Error;

/// The seed for a notebook's experiments: `MUSTKNOW_SEED` when it is set, else `default`.
///
/// Every experiment takes an explicit seed, so the same seed gives the same numbers, and
/// a notebook's claims are checked under other seeds by setting the variable.
pub fn notebook_seed(default: u64) -> Result<u64, Error> {
    match std::env::var("MUSTKNOW_SEED") {
        Ok(text) => text.trim().parse().map_err(|_| Error::BadSeed(text)),
        Err(_) => Ok(default),
    }
}

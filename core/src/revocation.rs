//! Client-certificate revocation, checked by us rather than by OpenSSL.
//!
//! OpenSSL checks a CRL by verifying its signature again at every
//! handshake: with 100,000 entries that SHA-256 alone cut full handshakes
//! to a fifth (bench `crl_100k`). Here each CRL is parsed, checked and
//! turned into a set of serials once ([`CrlIndex`]), when it is loaded or
//! fetched, and a handshake costs one lookup per certificate.
//!
//! A credential's CRLs come from its `ca.crl` file and from URLs (its
//! `ca.crl.url` file, `GatewayRuntime` `spec.revocation`), whose last good
//! CRL lives in a process-wide [`CrlSlot`] that the server's fetcher
//! refreshes: a slot outlives reloads, so a new configuration never starts
//! without the CRL the last one had.

mod check;
mod index;
mod slots;
mod stapling;

pub use check::{distribution_points, Revocation, RevocationPolicy, StalePolicy, Verdict};
pub use index::{CrlError, CrlIndex};
pub use slots::{
    bump_epoch, crl_epoch, learned_urls, live_slots, remember, slot, CrlSlot, FetchStatus,
    MAX_LEARNED,
};
pub use stapling::{staple_slot, StapleSlot};

#[cfg(test)]
mod tests;

//! OCSP responses fetched from a served certificate's responder (its AIA
//! extension), one slot per certificate for the whole process, kept
//! across reloads like the CRL slots.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwapOption;
use openssl::x509::X509;

use super::FetchStatus;
use crate::credentials::Staple;

/// The last good response for one served certificate.
#[derive(Debug)]
pub struct StapleSlot {
    /// Lower-case hex SHA-256 of the leaf.
    pub fingerprint: String,
    /// The DER OCSP request, and the responders to send it to.
    pub request: Vec<u8>,
    pub urls: Vec<String>,
    /// Leaf and issuer: what a response is checked against.
    pub chain: Vec<X509>,
    current: ArcSwapOption<Staple>,
    status: Mutex<FetchStatus>,
}

impl StapleSlot {
    pub fn current(&self) -> Option<Arc<Staple>> {
        self.current.load_full()
    }

    pub fn publish(&self, staple: Arc<Staple>) {
        self.current.store(Some(staple));
    }

    pub fn status(&self) -> FetchStatus {
        self.lock().clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut FetchStatus)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FetchStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static REGISTRY: Mutex<BTreeMap<String, Weak<StapleSlot>>> = Mutex::new(BTreeMap::new());

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<String, Weak<StapleSlot>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The slot of the certificate `chain[0]` (issued by `chain[1]`), when
/// its AIA names an OCSP responder.
pub fn staple_slot(chain: &[X509], fingerprint: &str) -> Option<Arc<StapleSlot>> {
    let mut r = registry();
    if let Some(s) = r.get(fingerprint).and_then(Weak::upgrade) {
        return Some(s);
    }
    r.retain(|_, w| w.strong_count() > 0);
    let (request, urls) = crate::credentials::ocsp_request(chain)?;
    let s = Arc::new(StapleSlot {
        fingerprint: fingerprint.to_string(),
        request,
        urls,
        chain: chain.iter().take(2).cloned().collect(),
        current: ArcSwapOption::empty(),
        status: Mutex::new(FetchStatus::default()),
    });
    r.insert(fingerprint.to_string(), Arc::downgrade(&s));
    Some(s)
}

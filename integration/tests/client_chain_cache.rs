//! `clientCertificateCache` on rustls listeners: a client chain verified
//! once is not verified by webpki again while the bundle that verified it
//! serves and every certificate in it is valid. These tests first prove
//! a chain was served from memory (the `hit` count), then change what the
//! memory must not outlive: the CA bundle, the time, the room.
//! (CRLs fetched without a reload: `revocation_fetch.rs`, under rustls.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tlsgate_integration::hostile::proc::wait_until;
use tlsgate_integration::*;

/// `None` when the suite forces OpenSSL listeners: nothing to test.
fn rustls_seed(entries: u32, partner_cas: &[&str]) -> Option<(Seed000, PathBuf)> {
    let cas: Vec<PathBuf> = partner_cas.iter().map(|c| ca_cert(c)).collect();
    rustls_seed_trusting(entries, &cas)
}

/// The seed on rustls, its partner host trusting the CA files `cas`.
fn rustls_seed_trusting(entries: u32, cas: &[PathBuf]) -> Option<(Seed000, PathBuf)> {
    if test_tls_library().as_deref() == Some("openssl") {
        eprintln!("NOTE: --tls-library openssl overrides the file here; nothing to test");
        return None;
    }
    let bundle: Vec<u8> = cas.iter().flat_map(|c| std::fs::read(c).unwrap()).collect();
    let s = Seed000::start_partner_trusting(
        &bundle,
        &format!("  tlsLibrary: rustls\n  clientCertificateCache: {{entries: {entries}}}\n"),
    );
    let creds = s.conf.path().join("credentials");
    Some((s, creds))
}

fn get(s: &Seed000, crt: &Path, key: &Path) -> CurlResult {
    s.partner("/")
        .cacert(&ca_cert("example"))
        .cert_files(crt, key)
        .run()
}

fn counted(s: &Seed000, result: &str) -> f64 {
    s.gateway
        .metrics()
        .sum("tlsgate_client_chain_cache_total", &[("result", result)])
}

/// `tlsgate_client_chain_cache_entries`, all credentials.
fn remembered(s: &Seed000) -> f64 {
    s.gateway
        .metrics()
        .sum("tlsgate_client_chain_cache_entries", &[])
}

fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_file_name(".swap.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_remembered_chain_is_refused_once_its_ca_is_removed() {
    let Some((s, creds)) = rustls_seed(16, &["acme", "pirate"]) else {
        return;
    };
    let (pirate_crt, pirate_key) = client_cert("bad-partner");
    let (acme_crt, acme_key) = client_cert("great-partner");
    for _ in 0..3 {
        let r = get(&s, &pirate_crt, &pirate_key);
        assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    }
    assert_eq!(counted(&s, "miss"), 1.0, "{}", s.gateway.describe());
    assert_eq!(counted(&s, "hit"), 2.0, "{}", s.gateway.describe());
    assert_eq!(remembered(&s), 1.0);

    // Pirate's CA leaves the bundle: its remembered chain must not outlive it.
    replace_file(
        &creds.join("partner-credential/ca.crt"),
        &std::fs::read(ca_cert("acme")).unwrap(),
    );
    assert!(
        wait_until(Duration::from_secs(5), || get(&s, &pirate_crt, &pirate_key)
            .status
            != 200),
        "Pirate still served after its CA was removed: {}",
        s.gateway.describe()
    );
    let r = get(&s, &pirate_crt, &pirate_key);
    assert!(r.stderr.contains("unknown ca"), "{r}");
    let hits = counted(&s, "hit");
    let r = get(&s, &acme_crt, &acme_key);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        counted(&s, "hit"),
        hits,
        "a new bundle starts with no memory"
    );
    assert_eq!(get(&s, &acme_crt, &acme_key).status, 200);
    assert_eq!(counted(&s, "hit"), hits + 1.0);
    // The old policy's memory went with it: only Acme's chain is counted.
    assert!(
        wait_until(Duration::from_secs(5), || remembered(&s) == 1.0),
        "{} chains remembered: {}",
        remembered(&s),
        s.gateway.describe()
    );
}

#[test]
fn a_remembered_chain_is_verified_again_when_its_certificate_ends() {
    let Some((s, _)) = rustls_seed(16, &["acme"]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let client = short_lived_acme_client(work.path(), "brief.apps.acme.com", 6);
    let (crt, key) = (client.join("tls.crt"), client.join("tls.key"));
    assert_eq!(get(&s, &crt, &key).status, 200);
    let r = get(&s, &crt, &key);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(counted(&s, "hit"), 1.0, "{}", s.gateway.describe());

    assert!(
        wait_until(Duration::from_secs(10), || get(&s, &crt, &key).status
            != 200),
        "served after its certificate ended: {}",
        s.gateway.describe()
    );
    let hits = counted(&s, "hit");
    let r = get(&s, &crt, &key);
    assert!(r.status != 200 && r.stderr.contains("expired"), "{r}");
    assert_eq!(counted(&s, "hit"), hits, "an ended chain is not a hit");
    let m = s.gateway.metrics();
    assert!(
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", "bad_client_cert")]
        ) >= 1.0,
        "{}",
        s.gateway.describe()
    );
    // A client whose certificate is still good is served as before.
    let (acme_crt, acme_key) = client_cert("great-partner");
    assert_eq!(get(&s, &acme_crt, &acme_key).status, 200);
}

/// Many clients against a small memory: the oldest go, counted, and the
/// memory never holds more than `entries`; `entries: 0` remembers nothing.
#[test]
fn the_memory_is_bounded_and_zero_turns_it_off() {
    let work = tempfile::tempdir().unwrap();
    let ca = acme_ca_copy(work.path());
    let clients: Vec<PathBuf> = (0..4)
        .map(|i| {
            let dir = work.path().join(format!("c{i}"));
            let out = tlsgate_certs_client(&ca, &dir, &format!("c{i}.apps.acme.com"), &[]);
            assert!(out.success(), "{out}");
            dir
        })
        .collect();
    for (entries, evicted, hits) in [(2u32, 2.0, 2.0), (0, 0.0, 0.0)] {
        let Some((s, _)) = rustls_seed(entries, &["acme"]) else {
            return;
        };
        // Four chains through a memory of two, then the last two again.
        for c in clients.iter().chain(&clients[2..]) {
            let r = get(&s, &c.join("tls.crt"), &c.join("tls.key"));
            assert_eq!(r.status, 200, "entries {entries}: {r}");
        }
        let label = format!("entries {entries}: {}", s.gateway.describe());
        assert_eq!(counted(&s, "evicted"), evicted, "{label}");
        assert_eq!(counted(&s, "hit"), hits, "{label}");
        assert_eq!(remembered(&s), f64::from(entries), "{label}");
        let misses = if entries == 0 { 0.0 } else { 4.0 };
        assert_eq!(counted(&s, "miss"), misses, "{label}");
        assert_eq!(s.backend_total(), 6, "{label}");
    }
}

/// A chain with an intermediate: remembered as the bytes sent, so the same
/// leaf without its intermediate is verified (and refused) in full, and
/// the remembered chain ends when its intermediate does, before the leaf.
#[test]
fn a_remembered_chain_is_its_intermediates_too() {
    let work = tempfile::tempdir().unwrap();
    let (root, mid, client) = (
        work.path().join("root"),
        work.path().join("mid"),
        work.path().join("client"),
    );
    assert!(tlsgate_certs_ca(&root, "Partners Root").success());
    let out = run_tlsgate(
        &[
            "certs",
            "ca",
            "--out",
            &mid.to_string_lossy(),
            "--cn",
            "Partners Issuing",
            "--ca",
            &root.to_string_lossy(),
            "--seconds",
            "8",
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
    let out = tlsgate_certs_client(&mid, &client, "fleet.partners.example", &[]);
    assert!(out.success(), "{out}");
    let (leaf, key) = (client.join("tls.crt"), client.join("tls.key"));
    let chain = work.path().join("chain.crt");
    let mut bytes = std::fs::read(&leaf).unwrap();
    bytes.extend(std::fs::read(mid.join("ca.crt")).unwrap());
    std::fs::write(&chain, bytes).unwrap();
    let Some((s, _)) = rustls_seed_trusting(16, &[root.join("ca.crt")]) else {
        return;
    };
    for _ in 0..2 {
        let r = get(&s, &chain, &key);
        assert_eq!(r.status, 200, "{r}\n{}", s.gateway.describe());
    }
    assert_eq!(counted(&s, "hit"), 1.0, "{}", s.gateway.describe());
    let r = get(&s, &leaf, &key);
    assert!(
        r.status != 200 && r.stderr.contains("unknown ca"),
        "the leaf without its intermediate: {r}"
    );
    assert_eq!(counted(&s, "hit"), 1.0, "another chain is no hit");

    // The intermediate ends; the leaf is good for years.
    assert!(
        wait_until(Duration::from_secs(15), || get(&s, &chain, &key).status
            != 200),
        "served after its intermediate ended: {}",
        s.gateway.describe()
    );
    let hits = counted(&s, "hit");
    let r = get(&s, &chain, &key);
    assert!(r.status != 200 && r.stderr.contains("expired"), "{r}");
    assert_eq!(counted(&s, "hit"), hits, "an ended chain is not a hit");
}

/// Forges a client's CertificateVerify: what someone who has a chain's
/// bytes (no secret) but not its key can send.
#[derive(Debug)]
struct Forger;

impl rustls::sign::SigningKey for Forger {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        let scheme = rustls::SignatureScheme::ECDSA_NISTP256_SHA256;
        offered
            .contains(&scheme)
            .then(|| Box::new(Forger) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

impl rustls::sign::Signer for Forger {
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        // A well-formed ECDSA signature (r = s = 1) that verifies nothing.
        Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        rustls::SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// One GET to the partner host presenting `chain` (PEM files, in order)
/// with a forged CertificateVerify; what came back, if anything.
fn forged(port: u16, chain: &[PathBuf]) -> Vec<u8> {
    tls_client::get_presenting(
        port,
        PARTNER_HOST,
        &ca_cert("example"),
        tls_client::pem_certs(chain),
        Arc::new(Forger),
        false,
    )
}

/// A chain's bytes are no secret: presenting them without the key (a
/// forged CertificateVerify) is refused, counted, and remembers nothing,
/// so it cannot push out the chain of a client that holds its key.
#[test]
fn only_a_client_holding_its_key_is_remembered() {
    let Some((s, _)) = rustls_seed(1, &["acme", "pirate"]) else {
        return;
    };
    let (crt, key) = client_cert("great-partner");
    for _ in 0..2 {
        assert_eq!(get(&s, &crt, &key).status, 200);
    }
    assert_eq!(counted(&s, "hit"), 1.0, "{}", s.gateway.describe());
    let failures = |s: &Seed000| {
        s.gateway
            .metrics()
            .sum("tlsgate_tls_handshake_failures_total", &[])
    };
    let before = failures(&s);
    // The legitimate leaf, then a different unused certificate each time:
    // each a new chain webpki accepts.
    for junk in [ca_cert("pirate"), ca_cert("example"), ca_cert("acme")] {
        let answer = forged(s.port, &[crt.clone(), junk]);
        assert!(
            !String::from_utf8_lossy(&answer).contains(" 200 "),
            "a forged CertificateVerify was served"
        );
    }
    let (ok, _) = s.gateway.wait_metrics(Duration::from_secs(5), |m| {
        m.sum("tlsgate_tls_handshake_failures_total", &[]) >= before + 3.0
    });
    assert!(
        ok,
        "forged handshakes not counted: {}",
        s.gateway.describe()
    );
    // Counted as OpenSSL counts a bad CertificateVerify: a failed
    // handshake, not a certificate from an unknown CA.
    let m = s.gateway.metrics();
    let by = |reason| {
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(
        (by("handshake"), by("unknown_ca")),
        (3.0, 0.0),
        "{}",
        s.gateway.describe()
    );
    assert_eq!(counted(&s, "evicted"), 0.0, "{}", s.gateway.describe());
    let hits = counted(&s, "hit");
    assert_eq!(get(&s, &crt, &key).status, 200);
    assert_eq!(
        counted(&s, "hit"),
        hits + 1.0,
        "the real client is still remembered"
    );
    assert_eq!(s.backend_total(), 3, "no forged request reached a backend");
}

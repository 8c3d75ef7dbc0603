//! Hot reload (issue 3): credentials and configuration change under a
//! running gateway, which never serves a broken credential and never drops a
//! connection.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tlsgate_integration::*;

/// Seed 000 with its own copy of the credentials, which the test edits.
fn seed_with_own_credentials() -> (Seed000, PathBuf) {
    let s = Seed000::start_custom(&[], |conf, yaml| {
        let creds = conf.path().join("credentials");
        copy_credentials(&creds).expect("copy credentials");
        yaml.replace(
            &credentials_dir().display().to_string(),
            &creds.display().to_string(),
        )
    });
    let creds = s.conf.path().join("credentials");
    (s, creds)
}

/// Replaces `path` the way editors and `kubectl cp` do: write aside, rename.
fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn serial_served(port: u16, sni: &str) -> Option<String> {
    let out = s_client_get(port, sni, sni, "/", &["-showcerts"]);
    let pem_start = out.stdout.find("-----BEGIN CERTIFICATE-----")?;
    let pem_end = out.stdout[pem_start..].find("-----END CERTIFICATE-----")? + pem_start + 25;
    let cert = openssl::x509::X509::from_pem(&out.stdout.as_bytes()[pem_start..pem_end]).ok()?;
    let serial = cert.serial_number().to_bn().ok()?.to_hex_str().ok()?;
    Some(serial.to_string().to_lowercase())
}

fn serial_of(pem: &Path) -> String {
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem).unwrap()).unwrap();
    let hex = cert.serial_number().to_bn().unwrap().to_hex_str().unwrap();
    hex.to_string().to_lowercase()
}

/// A fresh frontend.example.com certificate from the example CA.
fn new_frontend_cert(dir: &Path) -> PathBuf {
    let ca_dir = certs_example().join("ca").join("example");
    let out = tlsgate_certs_server(&ca_dir, dir, FRONTEND_HOST, &[FRONTEND_HOST]);
    assert!(out.success(), "tlsgate certs server: {}", out.combined());
    dir.to_path_buf()
}

#[test]
fn trusting_pirate_applies_within_a_second_without_restart() {
    let (s, creds) = seed_with_own_credentials();
    let pid = s.gateway.pid();
    let pirate = || {
        s.partner("/")
            .cacert(&ca_cert("pirate"))
            .client("bad-partner")
            .run()
    };
    let before = pirate();
    assert!(before.stderr.contains("unknown ca"), "before: {before}");

    let mut trusted = std::fs::read(ca_cert("acme")).unwrap();
    trusted.extend(std::fs::read(ca_cert("pirate")).unwrap());
    let started = Instant::now();
    replace_file(&creds.join("partner-credential/ca.crt"), &trusted);
    // The debounce is 200 ms; 3 s leaves room for a loaded CI machine. The
    // latency itself is measured by bench/, not here.
    let ok = wait_for(Duration::from_secs(3), || {
        (pirate().status == 200).then_some(())
    });
    assert!(
        ok.is_some(),
        "Pirate still refused {:?} after the update: {}\n{}",
        started.elapsed(),
        pirate(),
        s.gateway.describe()
    );
    let acme = s
        .partner("/")
        .cacert(&ca_cert("acme"))
        .client("great-partner")
        .run();
    assert_eq!(acme.status, 200, "Acme after the update: {acme}");
    assert_eq!(s.gateway.pid(), pid);
    let m = s.gateway.metrics();
    assert!(m.sum("tlsgate_reloads_total", &[("result", "applied")]) >= 1.0);
}

/// The kubelet's layout and update of a Secret volume: files are symlinks
/// into `..data`, itself a symlink to a timestamped folder that is replaced
/// by renaming a new symlink over it.
#[test]
fn kubernetes_secret_volume_data_swap_serves_the_new_serial() {
    let (s, creds) = seed_with_own_credentials();
    let secret = creds.join("frontend-credential");
    let v1 = secret.join("..2026_11_23_10_00_00.000000001");
    std::fs::create_dir_all(&v1).unwrap();
    for f in ["tls.crt", "tls.key"] {
        std::fs::rename(secret.join(f), v1.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(v1.file_name().unwrap(), secret.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), secret.join(f)).unwrap();
    }
    let old = serial_of(&v1.join("tls.crt"));
    assert!(
        wait_for(Duration::from_secs(3), || {
            (serial_served(s.port, FRONTEND_HOST)? == old).then_some(())
        })
        .is_some(),
        "the symlinked layout serves the same certificate"
    );

    let v2 = secret.join("..2026_11_23_10_05_00.000000002");
    std::fs::create_dir_all(&v2).unwrap();
    new_frontend_cert(&v2);
    let new = serial_of(&v2.join("tls.crt"));
    assert_ne!(old, new);
    std::os::unix::fs::symlink(v2.file_name().unwrap(), secret.join("..data_tmp")).unwrap();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();

    let served = wait_for(Duration::from_secs(3), || {
        serial_served(s.port, FRONTEND_HOST).filter(|x| *x == new)
    });
    assert!(
        served.is_some(),
        "after the ..data swap the gateway serves {:?}, want {new}\n{}",
        serial_served(s.port, FRONTEND_HOST),
        s.gateway.describe()
    );
}

fn broken_file_keeps_the_old_certificate(file: &str, broken: &dyn Fn(&[u8]) -> Vec<u8>) {
    let (s, creds) = seed_with_own_credentials();
    let dir = creds.join("frontend-credential");
    let old = serial_of(&dir.join("tls.crt"));
    let good = std::fs::read(dir.join(file)).unwrap();
    replace_file(&dir.join(file), &broken(&good));

    let refused = wait_for(Duration::from_secs(3), || {
        let m = s.gateway.metrics();
        (m.sum(
            "tlsgate_credential_reloads_total",
            &[("credential", "frontend-credential"), ("result", "refused")],
        ) >= 1.0)
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "no refusal counted\n{}",
        s.gateway.describe()
    );
    assert_eq!(
        serial_served(s.port, FRONTEND_HOST).as_deref(),
        Some(old.as_str())
    );
    assert_eq!(s.frontend("/").run().status, 200);
    let certs = s.gateway.admin_get("/certs").unwrap().body;
    assert!(
        certs.contains("last_error") && certs.contains(file),
        "/certs should name the refused file: {certs}"
    );

    // Fixing the file recovers (and clears the error).
    replace_file(&dir.join(file), &good);
    let cleared = wait_for(Duration::from_secs(3), || {
        let body = s.gateway.admin_get("/certs").ok()?.body;
        (!body.contains("\"last_error\": \"")).then_some(())
    });
    assert!(
        cleared.is_some(),
        "error not cleared after the fix: {}",
        s.gateway.admin_get("/certs").unwrap().body
    );
    assert_eq!(s.frontend("/").run().status, 200);
}

#[test]
fn broken_key_keeps_the_old_certificate_serving() {
    broken_file_keeps_the_old_certificate("tls.key", &|_| {
        b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n".to_vec()
    });
}

#[test]
fn truncated_certificate_keeps_the_old_certificate_serving() {
    broken_file_keeps_the_old_certificate("tls.crt", &|good| good[..good.len() / 2].to_vec());
}

/// Removing a CA from a MUTUAL host's bundle: a client of that CA fails on
/// a new connection, and cannot resume a session minted before the change.
#[test]
fn removing_a_ca_refuses_its_clients_and_their_sessions() {
    let (s, creds) = seed_with_own_credentials();
    let ca = creds.join("partner-credential/ca.crt");
    let mut both = std::fs::read(ca_cert("acme")).unwrap();
    both.extend(std::fs::read(ca_cert("pirate")).unwrap());
    replace_file(&ca, &both);
    let pirate = || {
        s.partner("/")
            .cacert(&ca_cert("pirate"))
            .client("bad-partner")
            .run()
    };
    assert!(wait_for(Duration::from_secs(3), || (pirate().status == 200)
        .then_some(()))
    .is_some());

    let (crt, key) = client_cert("bad-partner");
    let (crt_s, key_s) = (crt.display().to_string(), key.display().to_string());
    // TLS 1.2 and 1.3 tickets, and a TLS 1.2 session id.
    let versions: [&[&str]; 3] = [&["-tls1_2"], &["-tls1_3"], &["-tls1_2", "-no_ticket"]];
    let sess = |v: &[&str]| {
        s.conf
            .path()
            .join(format!("pirate{}.sess", v.concat()))
            .display()
            .to_string()
    };
    for v in versions {
        let args = [v, &["-cert", &crt_s, "-key", &key_s]].concat();
        let first = s_client_get(
            s.port,
            PARTNER_HOST,
            PARTNER_HOST,
            "/",
            &[&args[..], &["-sess_out", &sess(v)]].concat(),
        );
        assert!(
            first.stdout.contains("HTTP/1.1 200"),
            "{v:?} first: {}",
            first.combined()
        );
        let again = s_client_get(
            s.port,
            PARTNER_HOST,
            PARTNER_HOST,
            "/",
            &[&args[..], &["-sess_in", &sess(v)]].concat(),
        );
        assert!(
            again.stdout.contains("Reused,"),
            "{v:?} resumes before the change: {}",
            again.combined()
        );
    }

    replace_file(&ca, &std::fs::read(ca_cert("acme")).unwrap());
    assert!(
        wait_for(Duration::from_secs(3), || (pirate().status != 200)
            .then_some(()))
        .is_some(),
        "Pirate still accepted after its CA was removed"
    );
    let r = pirate();
    assert!(r.stderr.contains("unknown ca"), "{r}");
    for v in versions {
        let sess_in = sess(v);
        let args = [v, &["-cert", &crt_s, "-key", &key_s, "-sess_in", &sess_in]].concat();
        let out = s_client_get(s.port, PARTNER_HOST, PARTNER_HOST, "/", &args);
        assert!(
            !out.stdout.contains("Reused,"),
            "{v:?}: a session from before the CA removal resumed: {}",
            out.combined()
        );
        assert!(
            !out.stdout.contains("HTTP/1.1 200"),
            "{v:?}: Pirate got in with an old session: {}",
            out.combined()
        );
    }
}

#[test]
fn reloads_under_load_fail_no_request() {
    let (s, creds) = seed_with_own_credentials();
    // Half the clients keep their connection, half open one per request.
    let load = HttpsLoad::start(s.port, FRONTEND_HOST, 16, 16);
    // 50 credential rotations (two valid certificates in turn) and 10
    // configuration reloads while the clients run.
    let spare = s.conf.path().join("spare");
    std::fs::create_dir_all(&spare).unwrap();
    new_frontend_cert(&spare);
    let dir = creds.join("frontend-credential");
    let original = (
        std::fs::read(dir.join("tls.crt")).unwrap(),
        std::fs::read(dir.join("tls.key")).unwrap(),
    );
    let rotated = (
        std::fs::read(spare.join("tls.crt")).unwrap(),
        std::fs::read(spare.join("tls.key")).unwrap(),
    );
    let config = std::fs::read_to_string(&s.config_path).unwrap();
    for i in 0..50 {
        let (crt, key) = if i % 2 == 0 { &rotated } else { &original };
        // Key first, then certificate: in between, the pair does not match
        // and the reload must refuse it rather than serve it.
        replace_file(&dir.join("tls.key"), key);
        replace_file(&dir.join("tls.crt"), crt);
        if i % 5 == 0 {
            let edited =
                config.replace("name: https-frontend", &format!("name: https-frontend-{i}"));
            replace_file(&s.config_path, edited.as_bytes());
            let url = format!("http://{}/reload", s.gateway.admin_addr());
            let r = curl(&["-X", "POST", &url]);
            assert!(r.success(), "POST /reload: {}", r.combined());
        }
        std::thread::sleep(Duration::from_millis(120));
    }
    let outcome = load.stop();
    let (ok, failed) = (outcome.ok, outcome.failed + outcome.refused);
    let m = s.gateway.metrics();
    assert!(ok > 200, "too little traffic to mean anything: {ok} ok");
    assert_eq!(
        failed,
        0,
        "{failed} failed of {}: {:?}\n{}",
        ok + failed,
        outcome.errors,
        s.gateway.describe()
    );
    assert!(
        m.sum("tlsgate_reloads_total", &[("result", "applied")]) >= 10.0,
        "{}",
        s.gateway.describe()
    );
}

//! Credentials that must not serve are refused on a reload, one credential
//! at a time (issue 10, item 5): a certificate whose SANs miss a host it
//! serves, one not valid yet, and a Kubernetes Secret volume whose `..data`
//! leads nowhere or loops. The refused credential keeps serving its last
//! good version (same serial in `/certs` and on the wire), says why in
//! `/certs`, is counted, and another credential changed in the same reload
//! is applied.
//!
//! The file watcher is off: each change is applied by one `POST /reload`,
//! so no reload ever sees a half-written rotation.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tlsgate_integration::*;

const A: &str = "a-credential";
const B: &str = "b-credential";
const A_HOST: &str = "a.example.com";
const B_HOST: &str = "b.example.com";

/// A gateway serving `a.example.com` with `a-credential` and
/// `b.example.com` with `b-credential` (both from the example CA).
struct Two {
    gateway: Gateway,
    _backend: Backend,
    port: u16,
    conf: ConfigDir,
}

impl Two {
    /// `make(creds_dir, name, host)` writes each credential in its layout.
    fn start(make: impl Fn(&Path, &str, &str)) -> Two {
        require_certs_example();
        let backend = Backend::start("hardening");
        let conf = ConfigDir::new();
        let creds = conf.path().join("credentials");
        make(&creds, A, A_HOST);
        make(&creds, B, B_HOST);
        let port = free_port();
        let preamble = gateway_preamble(&creds).replace(
            "  credentialsDir: ",
            "  reload: {watch: false, rescanInterval: 1h}\n  credentialsDir: ",
        );
        let server = |name: &str, host: &str, credential: &str| {
            format!(
                "  - port: {{number: {port}, name: {name}, protocol: HTTPS}}\n    \
                 bind: 127.0.0.1\n    hosts: [{host}]\n    \
                 tls: {{mode: SIMPLE, credentialName: {credential}}}\n"
            )
        };
        let yaml = format!(
            "{preamble}{}{}---\n{}",
            server("https-a", A_HOST, A),
            server("https-b", B_HOST, B),
            route_all(&format!("{A_HOST}, {B_HOST}"), backend.port()),
        );
        let cfg = conf.write("hardening.yaml", &yaml);
        let gateway = Gateway::start(&[&cfg], &[]);
        Two {
            gateway,
            _backend: backend,
            port,
            conf,
        }
    }

    fn creds(&self) -> PathBuf {
        self.conf.path().join("credentials")
    }

    /// `POST /reload`; its JSON answer.
    fn reload(&self) -> serde_json::Value {
        let url = format!("http://{}/reload", self.gateway.admin_addr());
        let r = curl(&["-X", "POST", &url]);
        assert!(r.success(), "POST /reload: {}", r.combined());
        serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("POST /reload answered {e}: {}", r.stdout))
    }

    /// `credential`'s entry in `/certs`.
    fn certs_entry(&self, credential: &str) -> serde_json::Value {
        let body = self.gateway.admin_get("/certs").unwrap().body;
        let all: serde_json::Value = serde_json::from_str(&body).unwrap();
        all.as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == credential))
            .cloned()
            .unwrap_or_else(|| panic!("{credential} not in /certs: {body}"))
    }

    fn refusals_counted(&self, credential: &str) -> f64 {
        self.gateway.metrics().sum(
            "tlsgate_credential_reloads_total",
            &[("credential", credential), ("result", "refused")],
        )
    }

    /// A real handshake verifying the example CA and the host name.
    fn get(&self, host: &str) -> CurlResult {
        Curl::https(host, self.port, "/")
            .cacert(&ca_cert("example"))
            .run()
    }

    /// The credential refused by the last reload: still its old serial in
    /// `/certs` and on the wire, `last_error` saying `why`, counted once.
    fn assert_refused(
        &self,
        outcome: &serde_json::Value,
        credential: &str,
        host: &str,
        old: &str,
        why: &str,
    ) {
        let refused = outcome["refused"].to_string();
        assert!(
            refused.contains(&format!("{credential}: ")) && refused.contains(why),
            "POST /reload: {outcome}\n{}",
            self.gateway.describe()
        );
        let entry = self.certs_entry(credential);
        assert_eq!(entry["serial"], old, "/certs: {entry}");
        let last_error = entry["last_error"].as_str().unwrap_or_default();
        assert!(last_error.contains(why), "/certs: {entry}");
        assert_eq!(serial_served(self.port, host).as_deref(), Some(old));
        let r = self.get(host);
        assert_eq!(r.status, 200, "{host} after the refusal: {r}");
        assert_eq!(self.refusals_counted(credential), 1.0);
    }
}

/// `tlsgate certs server` from the example CA into `out`.
fn certs_server(out: &Path, host: &str, extra: &[&str]) -> String {
    let ca = certs_example().join("ca").join("example");
    let (ca, out_s) = (ca.to_string_lossy(), out.to_string_lossy());
    let mut args = vec![
        "certs", "server", "--ca", &ca, "--out", &out_s, "--host", host,
    ];
    args.extend_from_slice(extra);
    let r = run_tlsgate(&args, Duration::from_secs(30));
    assert!(r.success(), "tlsgate certs server: {}", r.combined());
    serial_of(&out.join("tls.crt"))
}

fn serial_of(pem: &Path) -> String {
    let cert = openssl::x509::X509::from_pem(&std::fs::read(pem).unwrap()).unwrap();
    let hex = cert.serial_number().to_bn().unwrap().to_hex_str().unwrap();
    hex.to_string().to_lowercase()
}

fn serial_served(port: u16, sni: &str) -> Option<String> {
    let out = s_client_get(port, sni, sni, "/", &["-showcerts"]);
    let start = out.stdout.find("-----BEGIN CERTIFICATE-----")?;
    let end = out.stdout[start..].find("-----END CERTIFICATE-----")? + start + 25;
    let cert = openssl::x509::X509::from_pem(&out.stdout.as_bytes()[start..end]).ok()?;
    let serial = cert.serial_number().to_bn().ok()?.to_hex_str().ok()?;
    Some(serial.to_string().to_lowercase())
}

fn plain_folder(creds: &Path, name: &str, host: &str) {
    certs_server(&creds.join(name), host, &[]);
}

/// Rotates plain folder `name` to a certificate for `host` made with
/// `extra` flags: written aside, then renamed in (key, then certificate).
fn rotate(t: &Two, name: &str, host: &str, extra: &[&str]) -> String {
    let staged = t.conf.path().join(format!("staged-{name}"));
    let serial = certs_server(&staged, host, extra);
    for f in ["tls.key", "tls.crt"] {
        std::fs::rename(staged.join(f), t.creds().join(name).join(f)).unwrap();
    }
    serial
}

/// Rotating `a-credential` to what `extra`/`host` make is refused with
/// `why`, while `b-credential`, rotated validly in the same reload, serves
/// its new certificate.
fn rotation_is_refused(host: &str, extra: &[&str], why: &str) {
    let t = Two::start(plain_folder);
    let a_old = serial_of(&t.creds().join(A).join("tls.crt"));
    assert_eq!(t.get(A_HOST).status, 200, "{}", t.gateway.describe());
    rotate(&t, A, host, extra);
    let b_new = rotate(&t, B, B_HOST, &[]);
    let outcome = t.reload();
    t.assert_refused(&outcome, A, A_HOST, &a_old, why);
    assert_eq!(serial_served(t.port, B_HOST), Some(b_new));
    assert_eq!(t.certs_entry(B)["last_error"], serde_json::Value::Null);
    assert_eq!(t.get(B_HOST).status, 200);
}

#[test]
fn a_certificate_whose_sans_miss_the_host_is_refused() {
    rotation_is_refused(
        "other.example.com",
        &[],
        "does not cover host 'a.example.com'",
    );
}

#[test]
fn a_certificate_not_valid_yet_is_refused() {
    rotation_is_refused(
        A_HOST,
        &["--starts-in-days", "1"],
        "certificate is not valid before",
    );
}

/// kubelet's layout: files in `..<timestamp>/`, `..data -> ..<timestamp>`,
/// `tls.crt -> ..data/tls.crt`.
fn secret_volume(creds: &Path, name: &str, host: &str) {
    let vol = creds.join(name);
    certs_server(&vol.join("..2026_01_01_00_00_00.000000001"), host, &[]);
    symlink("..2026_01_01_00_00_00.000000001", vol.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        symlink(format!("..data/{f}"), vol.join(f)).unwrap();
    }
}

/// Points a volume's `..data` at `to` as kubelet does: a new symlink
/// renamed over the old one.
fn swap_data(vol: &Path, to: &str) {
    symlink(to, vol.join("..data_tmp")).unwrap();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
}

/// In one reload, `break_a` breaks `a-credential`'s volume while
/// `b-credential`'s is validly updated: only A is refused.
fn broken_volume_is_refused_alone(break_a: impl FnOnce(&Path), why: &str) {
    let t = Two::start(secret_volume);
    let (a, b) = (t.creds().join(A), t.creds().join(B));
    let a_old = serial_of(&a.join("tls.crt"));
    assert_eq!(t.get(A_HOST).status, 200, "{}", t.gateway.describe());
    let b_new = certs_server(&b.join("..2026_02_02_00_00_00.000000002"), B_HOST, &[]);
    swap_data(&b, "..2026_02_02_00_00_00.000000002");
    break_a(&a);
    let outcome = t.reload();
    t.assert_refused(&outcome, A, A_HOST, &a_old, why);
    assert_eq!(serial_served(t.port, B_HOST), Some(b_new), "{outcome}");
    assert_eq!(t.certs_entry(B)["last_error"], serde_json::Value::Null);
    assert_eq!(t.get(B_HOST).status, 200);
}

#[test]
fn a_secret_volume_swapped_to_a_missing_folder_is_refused_alone() {
    broken_volume_is_refused_alone(
        |a| swap_data(a, "..2026_02_02_00_00_00.000000002"),
        "dangling symlink",
    );
}

#[test]
fn a_secret_volume_whose_data_link_loops_is_refused_alone() {
    broken_volume_is_refused_alone(|a| swap_data(a, "..data"), "symbolic links");
}

#[test]
fn a_secret_volume_whose_file_links_to_itself_is_refused_alone() {
    broken_volume_is_refused_alone(
        |a| {
            std::fs::remove_file(a.join("tls.crt")).unwrap();
            symlink("tls.crt", a.join("tls.crt")).unwrap();
        },
        "symbolic links",
    );
}

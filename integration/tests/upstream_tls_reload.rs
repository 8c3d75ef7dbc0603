//! Rotating the files a DestinationRule's TLS origination reads
//! (`caCertificates`, `clientCertificate`/`privateKey`) under a running
//! egress gateway. The bug this holds down: after `trusted-ca.pem` was
//! overwritten with the right CA, `POST /reload` answered "unchanged" and
//! requests kept failing with 502 until a restart (and the same for a
//! rotated client certificate). Now the file watcher alone applies the new
//! CA or certificate within a second, in the same process, and a broken
//! file keeps the last good one serving.
//!
//! The upstream is a hand-written HTTPS server whose certificate comes from
//! CA "B"; it closes every connection after one answer, so each request
//! makes a new TLS handshake with what the gateway trusts at that moment.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use tlsgate_integration::hostile::tls::tcp;
use tlsgate_integration::wire;
use tlsgate_integration::*;

const HOST: &str = "secure.remote.test";
const FAILURES: &str = "tlsgate_upstream_tls_failures_total";
const DESTINATION: &str = "secure.remote.test:80";
/// How long a rotation may take to apply, file written to 200.
const APPLIED_WITHIN: Duration = Duration::from_secs(1);

fn answer(_method: &str, _target: &str) -> Answer {
    Answer::close(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
}

/// A CA made by `tlsgate certs ca` in `<dir>/<name>/`.
fn new_ca(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    let out = tlsgate_certs_ca(&d, name);
    assert!(out.success(), "tlsgate certs ca: {out}");
    d
}

/// A client certificate from the CA in `ca` (`tls.crt`, `tls.key` in `<ca>-client/`).
fn new_client(ca: &Path) -> PathBuf {
    let out_dir = ca.with_file_name(format!(
        "{}-client",
        ca.file_name().unwrap().to_string_lossy()
    ));
    let out = tlsgate_certs_client(ca, &out_dir, "egress-client", &[]);
    assert!(out.success(), "tlsgate certs client: {out}");
    out_dir
}

/// Replaces `path` as editors and `kubectl cp` do: write aside, rename.
fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn copy_into(from: &Path, to: &Path) {
    replace_file(to, &std::fs::read(from).unwrap());
}

/// The HTTPS upstream: a certificate for [`HOST`] from CA `server_ca`,
/// client certificates from `client_ca` required when given.
fn https_upstream(pki: &Path, server_ca: &Path, client_ca: Option<&Path>) -> RawUpstream {
    let cert_dir = pki.join("upstream-server");
    let out = tlsgate_certs_server(server_ca, &cert_dir, HOST, &[HOST]);
    assert!(out.success(), "tlsgate certs server: {out}");
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_certificate_chain_file(cert_dir.join("tls.crt"))
        .unwrap();
    b.set_private_key_file(cert_dir.join("tls.key"), SslFiletype::PEM)
        .unwrap();
    if let Some(ca) = client_ca {
        b.set_ca_file(ca.join("ca.crt")).unwrap();
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    RawUpstream::start_tls(answer, b.build())
}

/// An egress gateway sending [`HOST`] (port 80) to `upstream` with the
/// DestinationRule `tls` block `tls` (indented for its place). Files it
/// names are relative to the configuration folder, which is watched.
struct Egress {
    gateway: Gateway,
    port: u16,
    conf: ConfigDir,
}

impl Egress {
    /// Starts it with `files` (name, copied from) in its configuration folder.
    fn start(upstream: u16, tls: &str, extra: &[&str], files: &[(&str, PathBuf)]) -> Egress {
        let conf = ConfigDir::new();
        for (name, from) in files {
            std::fs::copy(from, conf.path().join(name)).unwrap();
        }
        let creds = conf.path().join("credentials");
        std::fs::create_dir_all(&creds).unwrap();
        let port = free_port();
        let yaml = format!(
            "apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {{name: rt}}
spec:
  credentialsDir: {creds}
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    bind: 127.0.0.1
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure}}
spec:
  hosts: [{HOST}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP, targetPort: {upstream}}}
  endpoints:
  - address: 127.0.0.1
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure}}
spec:
  host: {HOST}
  trafficPolicy:
    tls:
{tls}",
            creds = creds.display(),
        );
        let path = conf.write("egress.yaml", &yaml);
        let gateway = Gateway::start(&[&path], extra);
        Egress {
            gateway,
            port,
            conf,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.conf.path().join(name)
    }

    /// `GET /x` with `Host: secure.remote.test`: status and body.
    fn get(&self) -> (u16, String) {
        let r = tcp(self.port, Duration::from_secs(5)).and_then(|mut s| {
            wire::exchange(
                &mut s,
                b"GET /x HTTP/1.1\r\nHost: secure.remote.test\r\n\r\n",
            )
        });
        match r {
            Ok(r) => (r.status, String::from_utf8_lossy(&r.body).into_owned()),
            Err(e) => panic!(
                "GET through the egress port: {e}\n{}",
                self.gateway.describe()
            ),
        }
    }

    /// Polls every 50 ms until a request answers 200; how long it took.
    fn wait_for_200(&self, within: Duration, what: &str) -> Duration {
        let start = Instant::now();
        let ok = wait_for(within, || (self.get().0 == 200).then_some(()));
        let took = start.elapsed();
        assert!(
            ok.is_some(),
            "{what}: still {:?} after {took:?}\n{}",
            self.get(),
            self.gateway.describe()
        );
        eprintln!("{what}: 200 after {took:?}");
        took
    }

    fn failures(&self, reason: &str) -> f64 {
        let labels = [("destination", DESTINATION), ("reason", reason)];
        self.gateway.metrics().sum(FAILURES, &labels)
    }

    /// `POST /reload`, its JSON answer.
    fn reload(&self) -> serde_json::Value {
        let url = format!("http://{}/reload", self.gateway.admin_addr());
        let r = Curl::new(url).args(["-X", "POST"]).run();
        assert_eq!(r.status, 200, "{r}");
        r.json()
    }
}

fn ca_rotation_applies_without_reload_or_restart(extra: &[&str]) {
    require_certs_example();
    let pki = tempfile::tempdir().unwrap();
    let (ca_a, ca_b) = (new_ca(pki.path(), "ca-a"), new_ca(pki.path(), "ca-b"));
    let up = https_upstream(pki.path(), &ca_b, None);
    let conf_tls =
        "      mode: SIMPLE\n      caCertificates: trusted-ca.pem\n      sni: secure.remote.test\n";
    let trust_a = [("trusted-ca.pem", ca_a.join("ca.crt"))];
    let mut eg = Egress::start(up.port(), conf_tls, extra, &trust_a);
    let pid = eg.gateway.pid();
    let trusted = eg.file("trusted-ca.pem");

    // Trusting A, the upstream's B certificate is an unknown CA.
    let (status, body) = eg.get();
    assert_eq!(status, 502, "{body}\n{}", eg.gateway.describe());
    assert!(body.contains("upstream_unknown_ca"), "{body}");
    assert!(
        eg.failures("upstream_unknown_ca") >= 1.0,
        "{}",
        eg.gateway.metrics().text
    );
    assert!(
        up.received().is_empty(),
        "a request passed an untrusted upstream"
    );

    // B written over A: the watcher applies it, no POST /reload.
    copy_into(&ca_b.join("ca.crt"), &trusted);
    eg.wait_for_200(APPLIED_WITHIN, "CA file rotated to B");
    assert_eq!(eg.gateway.pid(), pid);
    assert!(eg.gateway.try_wait().is_none(), "the gateway exited");

    // Garbage over B: refused, B keeps serving (each request a new handshake).
    replace_file(
        &trusted,
        b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    );
    let outcome = eg.reload();
    let refused: Vec<String> = outcome["refused"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let name = trusted.display().to_string();
    assert!(
        refused.iter().any(|r| r.contains(&name)),
        "POST /reload: {outcome}"
    );
    for _ in 0..3 {
        let (status, body) = eg.get();
        assert_eq!(
            status,
            200,
            "the last good CA stopped serving: {body}\n{}",
            eg.gateway.describe()
        );
    }
    let credential = format!("file:{name}");
    let refusals = [("credential", credential.as_str()), ("result", "refused")];
    let (counted, m) = eg.gateway.wait_metrics(Duration::from_secs(2), |m| {
        m.sum("tlsgate_credential_reloads_total", &refusals) >= 1.0
    });
    assert!(counted, "refusal not counted:\n{}", m.text);
    assert_eq!(eg.gateway.pid(), pid);
}

#[test]
fn a_rotated_ca_file_applies_within_a_second_and_garbage_keeps_the_last_good() {
    ca_rotation_applies_without_reload_or_restart(&[]);
}

#[test]
fn a_rotated_ca_file_applies_through_pingora_too() {
    ca_rotation_applies_without_reload_or_restart(&["--no-direct"]);
}

#[test]
fn a_rotated_client_certificate_applies_within_a_second() {
    require_certs_example();
    let pki = tempfile::tempdir().unwrap();
    let ca_b = new_ca(pki.path(), "ca-b");
    let (ca_c, ca_d) = (new_ca(pki.path(), "ca-c"), new_ca(pki.path(), "ca-d"));
    let (good, foreign) = (new_client(&ca_c), new_client(&ca_d));
    let up = https_upstream(pki.path(), &ca_b, Some(&ca_c));
    let conf_tls = "      mode: MUTUAL\n      clientCertificate: client.crt\n      privateKey: client.key\n      caCertificates: trusted-ca.pem\n      sni: secure.remote.test\n";
    let eg = Egress::start(
        up.port(),
        conf_tls,
        &[],
        &[
            ("trusted-ca.pem", ca_b.join("ca.crt")),
            ("client.crt", foreign.join("tls.crt")),
            ("client.key", foreign.join("tls.key")),
        ],
    );
    let pid = eg.gateway.pid();

    // A client certificate from D: the upstream (trusting C) refuses it.
    let (status, body) = eg.get();
    assert_eq!(status, 502, "{body}\n{}", eg.gateway.describe());
    assert!(body.contains("upstream_client_cert_rejected"), "{body}");
    assert!(eg.failures("upstream_client_cert_rejected") >= 1.0);
    assert!(up.handshake_failures() >= 1);
    assert!(up.received().is_empty());

    // Key and certificate from C written over them: applied by the watcher.
    copy_into(&good.join("tls.key"), &eg.file("client.key"));
    copy_into(&good.join("tls.crt"), &eg.file("client.crt"));
    eg.wait_for_200(APPLIED_WITHIN, "client certificate rotated to C");
    assert_eq!(eg.gateway.pid(), pid);
    assert!(!up.received().is_empty());
}

//! istio.io "Egress Gateways with TLS Origination", mutual TLS origination
//! to an external nginx, as a runbook: the sidecar -> egress gateway hop in
//! ISTIO_MUTUAL (curl holding the sleep workload's mesh certificate), the
//! gateway -> nginx hop in MUTUAL with `client-credential`. The task's
//! Gateway, VirtualService and DestinationRules are used as written; only
//! the gateway's port (443 in the task) is a free one here, and nginx is a
//! ServiceEntry on loopback instead of a pod.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use tlsgate_integration::upstream::{Answer, RawUpstream};
use tlsgate_integration::*;

const NGINX: &str = "my-nginx.mesh-external.svc.cluster.local";
const GATEWAY_ID: &str =
    "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account";
const SLEEP_ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";

fn nginx_answer(_method: &str, _target: &str) -> Answer {
    Answer::keep(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nWelcome nginx")
}

fn ok(out: CmdOutput, what: &str) {
    assert!(out.success(), "{what}: {out}");
}

/// The task's resources, the gateway on `port` (443 in the task).
fn task_yaml(port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: {port}
      name: https
      protocol: HTTPS
    bind: 127.0.0.1
    hosts:
    - my-nginx.mesh-external.svc.cluster.local
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-nginx
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: nginx
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      portLevelSettings:
      - port:
          number: 443
        tls:
          mode: ISTIO_MUTUAL
          sni: my-nginx.mesh-external.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-nginx-through-egress-gateway
spec:
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: nginx
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: {port}
    route:
    - destination:
        host: my-nginx.mesh-external.svc.cluster.local
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: MUTUAL
        credentialName: client-credential # this must match the secret created earlier to hold client certs
        sni: my-nginx.mesh-external.svc.cluster.local
"#
    )
}

/// The gateway's own identity and where nginx is.
fn runtime_yaml(creds: &Path, nginx_port: u16, mesh: bool) -> String {
    let mesh = if mesh {
        "  mesh:\n    credentialName: istio-egressgateway-certs\n    trustDomain: cluster.local\n"
    } else {
        ""
    };
    format!(
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata:\n  name: rt\nspec:\n  \
         credentialsDir: {creds}\n{mesh}---\n\
         apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: nginx\nspec:\n  \
         hosts: [{NGINX}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports:\n  \
         - {{number: 443, name: https, protocol: HTTPS}}\n  endpoints:\n  \
         - address: 127.0.0.1\n    ports: {{https: {nginx_port}}}\n",
        creds = creds.display()
    )
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The mesh CA and its certificates, nginx's CAs and certificates.
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let p = |s: &str| pki.path(s);
        for ca in ["mesh-ca", "nginx-ca", "nginx-client-ca", "pirate-ca"] {
            ok(tlsgate_certs_ca(&p(ca), ca), "certs ca");
        }
        // The gateway's workload identity, with the mesh CA as its bundle
        // (istio-proxy's cert-chain.pem, key.pem, root-cert.pem). The DNS
        // name lets curl, standing in for the sidecar, check it.
        let gw = p("credentials/istio-egressgateway-certs");
        ok(
            tlsgate_certs_server(
                &p("mesh-ca"),
                &gw,
                "istio-egressgateway",
                &[GATEWAY_ID, NGINX],
            ),
            "gateway workload certificate",
        );
        std::fs::copy(p("mesh-ca/ca.crt"), gw.join("ca.crt")).unwrap();
        // `kubectl create secret generic client-credential --from-file=tls.key
        // --from-file=tls.crt --from-file=ca.crt=example.com.crt`
        let cc = p("credentials/client-credential");
        ok(
            tlsgate_certs_client(&p("nginx-client-ca"), &cc, "client.example.com", &[]),
            "client-credential",
        );
        std::fs::copy(p("nginx-ca/ca.crt"), cc.join("ca.crt")).unwrap();
        ok(
            tlsgate_certs_server(&p("nginx-ca"), &p("nginx"), NGINX, &[NGINX]),
            "nginx server certificate",
        );
        for (name, ca, id) in [
            ("sleep", "mesh-ca", SLEEP_ID),
            (
                "outsider",
                "mesh-ca",
                "spiffe://other.domain/ns/default/sa/sleep",
            ),
            ("pirate", "pirate-ca", SLEEP_ID),
        ] {
            ok(tlsgate_certs_client(&p(ca), &p(name), name, &[id]), name);
        }
        pki
    }

    /// nginx with `ssl_verify_client on`, trusting the client CA.
    fn nginx(&self) -> RawUpstream {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        b.set_certificate_chain_file(self.path("nginx/tls.crt"))
            .unwrap();
        b.set_private_key_file(self.path("nginx/tls.key"), SslFiletype::PEM)
            .unwrap();
        b.set_ca_file(self.path("nginx-client-ca/ca.crt")).unwrap();
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        RawUpstream::start_tls(nginx_answer, b.build())
    }

    /// `curl` as the sleep pod's sidecar: the workload certificate `who`,
    /// the mesh CA, SNI and Host naming nginx.
    fn curl(&self, port: u16, who: Option<&str>) -> CurlResult {
        let mut c = Curl::https(NGINX, port, "/")
            .resolve(NGINX, port)
            .cacert(&self.path("mesh-ca/ca.crt"))
            .max_time(5);
        if let Some(who) = who {
            c = c.cert_files(
                &self.path(&format!("{who}/tls.crt")),
                &self.path(&format!("{who}/tls.key")),
            );
        }
        c.run()
    }
}

#[test]
fn sidecar_to_gateway_in_istio_mutual_then_mutual_to_nginx() {
    let pki = Pki::new();
    let nginx = pki.nginx();
    let port = free_port();
    let conf = ConfigDir::new();
    let task = conf.write("egress-mtls-origination.yaml", &task_yaml(port));
    let rt = conf.write(
        "00-runtime.yaml",
        &runtime_yaml(&pki.path("credentials"), nginx.port(), true),
    );
    let gateway = Gateway::start(&[&rt, &task], &[]);

    // kubectl exec sleep -- curl -sS http://my-nginx.mesh-external.svc.cluster.local
    let r = pki.curl(port, Some("sleep"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "Welcome nginx");
    assert_eq!(nginx.handshake_failures(), 0);
    assert_eq!(nginx.received().len(), 1);

    // Only a mesh identity of the trust domain, signed by the mesh CA, gets in.
    for who in [Some("outsider"), Some("pirate"), None] {
        let r = pki.curl(port, who);
        assert_eq!(r.status, 0, "{who:?} must be refused: {r:?}");
    }
    assert_eq!(nginx.received().len(), 1, "nothing refused reached nginx");
    let m = gateway.metrics();
    let refused = |reason| {
        m.sum(
            "tlsgate_tls_handshake_failures_total",
            &[("reason", reason)],
        )
    };
    assert!(refused("san_not_allowed") >= 1.0, "{}", gateway.logs());
    assert!(refused("unknown_ca") >= 1.0, "{}", gateway.logs());
}

/// Without the gateway's mesh identity, ISTIO_MUTUAL is an error that says
/// what to add; with it, `tlsgate check` accepts the task as written.
#[test]
fn istio_mutual_needs_the_mesh_identity() {
    let pki = Pki::new();
    let conf = ConfigDir::new();
    let task = conf.write("task.yaml", &task_yaml(8443));
    let task = task.to_string_lossy();
    for (mesh, want_ok) in [(false, false), (true, true)] {
        let rt = conf.write(
            "00-runtime.yaml",
            &runtime_yaml(&pki.path("credentials"), 9443, mesh),
        );
        let rt = rt.to_string_lossy();
        let out = run_tlsgate(
            &["check", "--config", &rt, "--config", &task],
            Duration::from_secs(30),
        );
        assert_eq!(out.success(), want_ok, "{out}");
        if !want_ok {
            assert!(
                out.stderr.contains(
                    "Gateway/istio-egressgateway: spec.servers[0].tls.mode: ISTIO_MUTUAL needs the \
                     gateway's mesh identity: add GatewayRuntime spec.mesh"
                ),
                "{out}"
            );
            assert!(
                out.stderr.contains(
                    "DestinationRule/egressgateway-for-nginx: \
                     spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.mode: ISTIO_MUTUAL needs"
                ),
                "{out}"
            );
        }
    }
}

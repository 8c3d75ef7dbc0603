//! Real users' files: Istio's samples and istio.io's tasks keep Kubernetes
//! objects and mesh-only documents beside the gateway's. `tlsgate check`
//! and `tlsgate run` load them as they are, say what they ignore, and serve
//! the rest; `--strict` refuses them.

use std::time::Duration;

use tlsgate_integration::*;

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Istio's `samples/httpbin/httpbin.yaml`, as it is.
const HTTPBIN: &str = include_str!("../istio-samples/httpbin.yaml");

/// Bookinfo's `virtual-service-all-v1.yaml` (two of its documents): no
/// `gateways`, so only sidecars use them.
const BOOKINFO_ALL_V1: &str = r"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: productpage
spec:
  hosts:
  - productpage
  http:
  - route:
    - destination:
        host: productpage
        subset: v1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
";

/// istio.io "Secure Gateways", with the route's port left out: the
/// Service named by the destination has one port, which is used.
fn secure_ingress(port: u16, service: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: {port}
      name: https
      protocol: HTTPS
    bind: 127.0.0.1
    tls:
      mode: SIMPLE
      credentialName: frontend-credential # must be the same as secret
    hosts:
    - frontend.example.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "frontend.example.com"
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        host: {service}
"#
    )
}

const WARNINGS: &[&str] = &[
    "ServiceAccount/httpbin: kind: ignored: v1 ServiceAccount is not a kind tlsgate reads",
    "Deployment/httpbin: kind: ignored: apps/v1 Deployment is not a kind tlsgate reads",
    "VirtualService/productpage: spec.gateways: ignored: applies to sidecars",
    "VirtualService/reviews: spec.gateways: ignored: applies to sidecars",
    "Service/httpbin: spec: ignored: a Kubernetes Service is not served by tlsgate",
];

fn write_files(conf: &ConfigDir, port: u16, service: &str) -> String {
    conf.write("httpbin.yaml", HTTPBIN);
    conf.write("virtual-service-all-v1.yaml", BOOKINFO_ALL_V1);
    conf.write("secure-ingress.yaml", &secure_ingress(port, service));
    conf.path().to_string_lossy().into_owned()
}

#[test]
fn check_prints_each_warning_and_strict_refuses_them() {
    require_certs_example();
    let conf = ConfigDir::new();
    let dir = write_files(&conf, free_port(), "httpbin");
    let creds = credentials_dir().to_string_lossy().into_owned();
    let args = ["check", "--config", &dir, "--credentials", &creds];
    let out = run_tlsgate(&args, CHECK_TIMEOUT);
    assert!(out.success(), "warnings alone do not fail check: {out}");
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .collect();
    assert_eq!(warnings.len(), WARNINGS.len(), "{out}");
    for want in WARNINGS {
        assert!(
            warnings.iter().any(|w| w.contains(want)),
            "missing warning '{want}': {out}"
        );
    }
    // Each names its file.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("virtual-service-all-v1.yaml: VirtualService/reviews")),
        "{out}"
    );
    assert!(out.stderr.contains("5 warning(s)"), "{out}");
    // The portless destination took the Service's only port.
    assert!(out.stdout.contains("httpbin:8000"), "{out}");

    let strict = [&args[..], &["--strict"]].concat();
    let out = run_tlsgate(&strict, CHECK_TIMEOUT);
    assert!(
        !out.success(),
        "--strict refuses what would be ignored: {out}"
    );
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert_eq!(errors, WARNINGS.len(), "{out}");
    assert!(out.stderr.contains("refused by --strict"), "{out}");
}

/// The same files served: the gateway's route works with the port the
/// Kubernetes Service gives it, the warnings are logged once, counted in
/// `tlsgate_config_warnings` and listed by `/config_dump`.
#[test]
fn run_serves_the_files_and_reports_what_it_ignores() {
    require_certs_example();
    let backend = Backend::start("httpbin");
    let conf = ConfigDir::new();
    let port = free_port();
    // `localhost` resolves here as a cluster's service names resolve there.
    let dir = write_files(&conf, port, "localhost");
    conf.write(
        "localhost-service.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: localhost\nspec:\n  ports:\n  \
             - name: http\n    port: {}\n    targetPort: 80\n",
            backend.port()
        ),
    );
    let creds = credentials_dir().to_string_lossy().into_owned();
    let gateway = Gateway::start(&[&dir], &["--credentials", &creds]);

    let r = Curl::https(FRONTEND_HOST, port, "/status/200")
        .cacert(&ca_cert("example"))
        .run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(backend.count(), 1);
    let r = Curl::https(FRONTEND_HOST, port, "/other")
        .cacert(&ca_cert("example"))
        .run();
    assert_eq!(r.status, 404, "only the task's paths are routed: {r:?}");

    let expected = WARNINGS.len() + 1; // and the second Service
    let m = gateway.metrics();
    assert_eq!(m.sum("tlsgate_config_warnings", &[]), expected as f64);
    let dump = gateway.admin_get("/config_dump").unwrap();
    let dump: serde_json::Value = serde_json::from_str(&dump.body).unwrap();
    let listed = dump["model"]["warnings"].as_array().unwrap();
    assert_eq!(listed.len(), expected, "{listed:#?}");
    assert!(listed.iter().any(|w| w["doc"] == "VirtualService/reviews"
        && w["field"] == "spec.gateways"
        && w["reason"]
            .as_str()
            .unwrap()
            .starts_with("applies to sidecars")));
    let logged = gateway.logs().matches("configuration ignored").count();
    assert_eq!(
        logged,
        expected,
        "logged once per load:\n{}",
        gateway.logs()
    );
}

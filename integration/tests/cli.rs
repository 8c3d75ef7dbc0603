//! The command line: `tlsgate check`, `tlsgate run` refusing bad input,
//! `tlsgate certs`.

use std::time::Duration;

use tlsgate_integration::*;

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn check_accepts_seed_000() {
    require_certs_example();
    let seed = conf_file("seed-000-ingress.yaml");
    let seed = seed.to_string_lossy();
    let creds = credentials_dir();
    let creds = creds.to_string_lossy();
    let out = run_tlsgate(
        &["check", "--config", &seed, "--credentials", &creds],
        CHECK_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    // The summary names what was loaded.
    assert!(out.stdout.contains("frontend-credential"), "{out}");
    assert!(out.stdout.contains("partner-credential"), "{out}");

    // Without --credentials, the file's relative credentialsDir is used
    // (relative to the file, not to the working directory).
    let tmp = tempfile::tempdir().unwrap();
    let out = run_command(
        tlsgate_bin().as_os_str(),
        &["check", "--config", &seed],
        None,
        CHECK_TIMEOUT,
        Some(tmp.path()),
    );
    assert!(out.success(), "credentialsDir relative to the file: {out}");
}

#[test]
fn check_accepts_the_embedded_default_and_a_directory() {
    let out = run_tlsgate(&["check"], CHECK_TIMEOUT);
    assert!(out.success(), "embedded default: {out}");

    // A directory of YAML files is read whole.
    require_certs_example();
    let conf = ConfigDir::new();
    let mut ports = Seed000Ports::new(9080);
    ports.gateway = 9443;
    let yaml = seed000_yaml(&ports);
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    assert!(docs.len() >= 4, "seed file has {} documents", docs.len());
    for (i, d) in docs.iter().enumerate() {
        conf.write(&format!("doc-{i}.yaml"), d);
    }
    conf.write("README.txt", "not YAML, not read");
    let dir = conf.path().to_string_lossy().into_owned();
    let out = run_tlsgate(&["check", "--config", &dir], CHECK_TIMEOUT);
    assert!(out.success(), "directory: {out}");
}

const BROKEN: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: typo-gateway
spec:
  servers:
  - port: {number: 9444, name: https, protocol: HTTPS}
    hosts: [typo.example.com]
    tls:
      mode: SIMPLE
      credentialNmae: frontend-credential
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: missing-credential
spec:
  servers:
  - port: {number: 9445, name: https, protocol: HTTPS}
    hosts: [missing.example.com]
    tls:
      mode: SIMPLE
      credentialName: no-such-credential
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: dangling
spec:
  hosts: [missing.example.com]
  gateways: [no-such-gateway]
  http:
  - route:
    - destination: {host: 127.0.0.1, port: {number: 9446}}
"#;

#[test]
fn check_reports_every_error_with_file_document_and_field() {
    require_certs_example();
    let conf = ConfigDir::new();
    let file = conf.write("broken.yaml", BROKEN);
    let file_s = file.to_string_lossy().into_owned();
    let creds = credentials_dir().to_string_lossy().into_owned();
    let out = run_tlsgate(
        &["check", "--config", &file_s, "--credentials", &creds],
        CHECK_TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{out}");
    let text = out.combined();
    let lines: Vec<&str> = text.lines().collect();
    let line_with = |needles: &[&str]| lines.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    // Unknown field: file, document, field path, the field's name.
    assert!(
        line_with(&[
            "broken.yaml",
            "Gateway/typo-gateway",
            "spec.servers[0].tls",
            "credentialNmae"
        ]),
        "unknown field not reported with file, document and path:\n{text}"
    );
    // Missing credential.
    assert!(
        line_with(&[
            "broken.yaml",
            "Gateway/missing-credential",
            "spec.servers[0].tls.credentialName",
            "no-such-credential"
        ]),
        "missing credential not reported with file, document and path:\n{text}"
    );
    // Reference to a gateway that does not exist.
    assert!(
        line_with(&[
            "broken.yaml",
            "VirtualService/dangling",
            "spec.gateways[0]",
            "no-such-gateway"
        ]),
        "dangling gateway reference not reported:\n{text}"
    );
}

#[test]
fn check_reports_a_missing_file_and_bad_yaml() {
    let conf = ConfigDir::new();
    let missing = conf.path().join("nope.yaml");
    let missing_s = missing.to_string_lossy().into_owned();
    let out = run_tlsgate(&["check", "--config", &missing_s], CHECK_TIMEOUT);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.combined().contains("nope.yaml"), "{out}");

    let bad = conf.write(
        "bad.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n  metadata: [\n",
    );
    let bad_s = bad.to_string_lossy().into_owned();
    let out = run_tlsgate(&["check", "--config", &bad_s], CHECK_TIMEOUT);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.combined().contains("bad.yaml"), "{out}");

    let unknown = conf.write(
        "unknown-kind.yaml",
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\nspec: {}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: Gatway\nmetadata: {name: typo}\nspec: {}\n",
    );
    let unknown_s = unknown.to_string_lossy().into_owned();
    let out = run_tlsgate(&["check", "--config", &unknown_s], CHECK_TIMEOUT);
    assert_eq!(
        out.code,
        Some(1),
        "a kind that would change behaviour, or a misspelt one, must be an error: {out}"
    );
    assert!(
        out.stderr.contains("EnvoyFilter/f: kind: an EnvoyFilter"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("Gatway/typo: kind: unknown kind 'Gatway'"),
        "{out}"
    );
    assert!(out.stderr.contains("2 error(s)"), "{out}");
}

#[test]
fn run_refuses_a_broken_config_and_names_its_errors() {
    require_certs_example();
    let conf = ConfigDir::new();
    let file = conf.write("broken.yaml", BROKEN);
    let creds = credentials_dir().to_string_lossy().into_owned();
    let mut g = Gateway::spawn(&[
        "--config".into(),
        file.to_string_lossy().into_owned(),
        "--credentials".into(),
        creds,
    ])
    .unwrap();
    let exited = wait_for(Duration::from_secs(15), || g.try_wait());
    let st =
        exited.unwrap_or_else(|| panic!("run kept going on a broken config\n{}", g.describe()));
    assert!(
        !st.success(),
        "run exited 0 on a broken config\n{}",
        g.describe()
    );
    let logs = g.logs();
    assert!(logs.contains("credentialNmae"), "{logs}");
    assert!(logs.contains("no-such-credential"), "{logs}");
}

#[test]
fn certs_command_makes_a_working_mutual_setup() {
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca");
    let creds = work.path().join("credentials");
    let out = tlsgate_certs_ca(&ca, "Test Root CA");
    assert!(out.success(), "certs ca: {out}");
    assert!(
        ca.join("ca.crt").is_file() && ca.join("ca.key").is_file(),
        "{out}"
    );

    let server = creds.join("svc-credential");
    let out = tlsgate_certs_server(&ca, &server, "svc.test.example", &["svc.test.example"]);
    assert!(out.success(), "certs server: {out}");
    std::fs::copy(ca.join("ca.crt"), server.join("ca.crt")).unwrap();

    let client = work.path().join("client");
    let out = tlsgate_certs_client(
        &ca,
        &client,
        "client.test.example",
        &["spiffe://test.example/client"],
    );
    assert!(out.success(), "certs client: {out}");
    let (subject, _) = cert_subject_and_serial(&client.join("tls.crt"));
    assert!(subject.contains("client.test.example"), "{subject}");

    // The files make a working MUTUAL gateway, verified end to end.
    let backend = Backend::start("certs");
    let port = free_port();
    let conf = ConfigDir::new();
    let cfg = conf.write(
        "svc.yaml",
        &format!(
            r#"apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata: {{name: rt}}
spec:
  credentialsDir: {creds}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  servers:
  - port: {{number: {port}, name: https, protocol: HTTPS}}
    bind: 127.0.0.1
    hosts: [svc.test.example]
    tls: {{mode: MUTUAL, credentialName: svc-credential}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc}}
spec:
  hosts: [svc.test.example]
  gateways: [gw]
  http:
  - route:
    - destination: {{host: 127.0.0.1, port: {{number: {b}}}}}
"#,
            creds = creds.display(),
            b = backend.port()
        ),
    );
    let gw = Gateway::start(&[&cfg], &[]);
    let r = Curl::https("svc.test.example", port, "/")
        .cacert(&ca.join("ca.crt"))
        .cert_files(&client.join("tls.crt"), &client.join("tls.key"))
        .run();
    assert_eq!(r.status, 200, "{r}\n{}", gw.describe());
    let xfcc = r
        .backend_header("x-forwarded-client-cert")
        .unwrap_or_default();
    assert!(xfcc.contains("URI=spiffe://test.example/client"), "{r}");
}

//! The deployment files agree with each other and with the README:
//! `Dockerfile`, `conf/kubernetes/*.yaml` and the README's "Deploying".
//!
//! No Docker engine or cluster runs here, so these tests read the files:
//! paths, ports, Secret names, probes and the build command must be the same
//! everywhere, and the ConfigMap's configuration must pass `tlsgate check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;
use tlsgate_integration::readme::{code_blocks, commands, readme, section, shell_words};
use tlsgate_integration::*;

const CONFIG_DIR: &str = "/etc/tlsgate";
const CREDENTIALS_DIR: &str = "/etc/tlsgate/credentials";
const TICKET_KEYS_DIR: &str = "/etc/tlsgate/ticket-keys";
const TICKET_KEYS_SECRET: &str = "tlsgate-ticket-keys";
const BUILD: &str = "cargo build --release --locked -p tlsgate";

// ---------------------------------------------------------------- reading

fn k8s_dir() -> PathBuf {
    workspace_root().join("conf").join("kubernetes")
}

/// Every document of every `conf/kubernetes/*.yaml`, with its file name.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("conf/kubernetes exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in conf/kubernetes");
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in yaml_docs(&text, &name) {
            out.push((name.clone(), doc));
        }
    }
    out
}

/// The documents of a multi-document YAML text (separated by `---` lines).
fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else {
            let cur = docs.last_mut().expect("one document");
            cur.push_str(line);
            cur.push('\n');
        }
    }
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            serde_yaml::from_str::<Value>(d)
                .unwrap_or_else(|e| panic!("{what}: document {}: invalid YAML: {e}", i + 1))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// `v[a][b]...`, `Value::Null` when absent.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    let mut cur = v;
    for p in path {
        cur = match cur.get(*p) {
            Some(x) => x,
            None => return &NULL,
        };
    }
    cur
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string in {v:?}", path.join(".")))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

fn kind(v: &Value) -> &str {
    at(v, &["kind"]).as_str().unwrap_or("")
}

fn port_num(v: &Value) -> Option<u16> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The objects of `conf/kubernetes/`, one of each kind (Routes: all).
struct Deploy {
    configmap: Value,
    deployment: Value,
    service: Value,
    pdb: Value,
    routes: Vec<Value>,
    /// The ConfigMap's `tlsgate.yaml`, parsed.
    istio: Vec<Value>,
    istio_text: String,
}

impl Deploy {
    fn load() -> Deploy {
        let all = manifests();
        let one = |k: &str| -> Value {
            let found: Vec<&Value> = all
                .iter()
                .map(|(_, v)| v)
                .filter(|v| kind(v) == k)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "expected exactly one {k} in conf/kubernetes"
            );
            found[0].clone()
        };
        let configmap = one("ConfigMap");
        let istio_text = s(&configmap, &["data", "tlsgate.yaml"]).to_string();
        Deploy {
            deployment: one("Deployment"),
            service: one("Service"),
            pdb: one("PodDisruptionBudget"),
            routes: all
                .iter()
                .filter(|(_, v)| kind(v) == "Route")
                .map(|(_, v)| v.clone())
                .collect(),
            istio: yaml_docs(&istio_text, "ConfigMap tlsgate.yaml"),
            istio_text,
            configmap,
        }
    }

    fn pod(&self) -> &Value {
        at(&self.deployment, &["spec", "template", "spec"])
    }

    fn container(&self) -> &Value {
        let cs = seq(self.pod(), &["containers"]);
        assert_eq!(cs.len(), 1, "one container in the Deployment");
        &cs[0]
    }

    /// containerPort by port name.
    fn container_ports(&self) -> BTreeMap<String, u16> {
        seq(self.container(), &["ports"])
            .iter()
            .map(|p| {
                (
                    s(p, &["name"]).to_string(),
                    port_num(at(p, &["containerPort"])).expect("containerPort"),
                )
            })
            .collect()
    }

    /// A port reference of a probe, Service or Route: a number, or a
    /// container port name.
    fn resolve_container_port(&self, v: &Value) -> u16 {
        port_num(v)
            .or_else(|| {
                v.as_str()
                    .and_then(|name| self.container_ports().get(name).copied())
            })
            .unwrap_or_else(|| panic!("port {v:?} is not a container port"))
    }

    fn istio_of(&self, k: &str) -> Vec<&Value> {
        self.istio.iter().filter(|v| kind(v) == k).collect()
    }

    fn runtime(&self) -> &Value {
        let r = self.istio_of("GatewayRuntime");
        assert_eq!(r.len(), 1, "one GatewayRuntime in the ConfigMap");
        r[0]
    }

    fn admin_port(&self) -> u16 {
        let admin = s(self.runtime(), &["spec", "admin"]);
        let addr: std::net::SocketAddr = admin.parse().expect("admin is an address");
        assert!(
            addr.ip().is_unspecified(),
            "GatewayRuntime admin must listen on 0.0.0.0 in a pod (the kubelet probes it from outside): {admin}"
        );
        addr.port()
    }

    /// (port, protocol, hosts, tls) of every Gateway server.
    fn servers(&self) -> Vec<(u16, String, Vec<String>, Value)> {
        let mut out = Vec::new();
        for g in self.istio_of("Gateway") {
            for srv in seq(g, &["spec", "servers"]) {
                assert!(
                    at(srv, &["bind"]).is_null() || s(srv, &["bind"]) == "0.0.0.0",
                    "a Gateway server in a pod must bind 0.0.0.0: {srv:?}"
                );
                out.push((
                    port_num(at(srv, &["port", "number"])).expect("port.number"),
                    s(srv, &["port", "protocol"]).to_ascii_uppercase(),
                    seq(srv, &["hosts"])
                        .iter()
                        .map(|h| h.as_str().unwrap().to_string())
                        .collect(),
                    at(srv, &["tls"]).clone(),
                ));
            }
        }
        assert!(!out.is_empty(), "the ConfigMap has Gateway servers");
        out
    }

    /// credentialName of every Gateway server and DestinationRule.
    fn credential_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .servers()
            .iter()
            .filter_map(|(_, _, _, tls)| at(tls, &["credentialName"]).as_str().map(str::to_string))
            .collect();
        for dr in self.istio_of("DestinationRule") {
            collect_credential_names(at(dr, &["spec"]), &mut names);
        }
        names
    }

    /// mountPath by volume name.
    fn mounts(&self) -> BTreeMap<String, String> {
        seq(self.container(), &["volumeMounts"])
            .iter()
            .map(|m| {
                (
                    s(m, &["name"]).to_string(),
                    s(m, &["mountPath"]).to_string(),
                )
            })
            .collect()
    }

    fn volume(&self, name: &str) -> &Value {
        seq(self.pod(), &["volumes"])
            .iter()
            .find(|v| s(v, &["name"]) == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    }

    /// Secret name -> mount path, for every Secret volume (projected ones too).
    fn secret_mounts(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (vol, path) in self.mounts() {
            let v = self.volume(&vol);
            if let Some(name) = at(v, &["secret", "secretName"]).as_str() {
                out.insert(name.to_string(), path.clone());
            }
            for src in seq(v, &["projected", "sources"]) {
                if let Some(name) = at(src, &["secret", "name"]).as_str() {
                    out.insert(name.to_string(), format!("{path}/<projected>"));
                }
            }
        }
        out
    }
}

fn collect_credential_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some("credentialName") {
                    if let Some(n) = val.as_str() {
                        out.insert(n.to_string());
                    }
                } else {
                    collect_credential_names(val, out);
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| collect_credential_names(i, out)),
        _ => {}
    }
}

fn workspace_version() -> String {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let mut in_pkg = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_pkg = t == "[workspace.package]";
        } else if in_pkg {
            if let Some(v) = t.strip_prefix("version") {
                return v
                    .trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"')
                    .to_string();
            }
        }
    }
    panic!("no version in [workspace.package]");
}

// ---------------------------------------------------------------- Dockerfile

/// The Dockerfile's instructions (continuations joined, comments dropped),
/// each with the stage (0-based) it belongs to.
struct Dockerfile {
    instructions: Vec<(usize, String, String)>,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        let text =
            std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
        let mut instructions = Vec::new();
        let mut cur = String::new();
        let mut stage: Option<usize> = None;
        for line in text.lines() {
            let t = line.trim();
            if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
                continue;
            }
            if let Some(head) = t.strip_suffix('\\') {
                cur.push_str(head.trim_end());
                cur.push(' ');
                continue;
            }
            cur.push_str(t);
            let full = std::mem::take(&mut cur);
            let (op, rest) = full.split_once(' ').unwrap_or((&full, ""));
            let op = op.to_ascii_uppercase();
            if op == "FROM" {
                stage = Some(stage.map_or(0, |s| s + 1));
            }
            instructions.push((
                stage.expect("the Dockerfile starts with FROM"),
                op,
                rest.trim().to_string(),
            ));
        }
        Dockerfile { instructions }
    }

    fn all(&self, op: &str) -> Vec<(usize, &str)> {
        self.instructions
            .iter()
            .filter(|(_, o, _)| o == op)
            .map(|(s, _, r)| (*s, r.as_str()))
            .collect()
    }

    fn last_stage(&self) -> usize {
        self.instructions.last().map_or(0, |i| i.0)
    }

    /// The single `op` of the final stage.
    fn runtime(&self, op: &str) -> &str {
        let last = self.last_stage();
        let found: Vec<&str> = self
            .all(op)
            .into_iter()
            .filter(|(s, _)| *s == last)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(found.len(), 1, "one {op} in the runtime stage: {found:?}");
        found[0]
    }

    fn exposed(&self) -> BTreeSet<u16> {
        self.all("EXPOSE")
            .iter()
            .flat_map(|(_, r)| r.split_whitespace())
            .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
            .collect()
    }

    /// Packages `apt-get install`ed in `stage`.
    fn apt_packages(&self, stage: usize) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (st, run) in self.all("RUN") {
            if st != stage {
                continue;
            }
            for part in run.split("&&") {
                let words: Vec<&str> = part.split_whitespace().collect();
                if words.starts_with(&["apt-get", "install"]) {
                    out.extend(
                        words[2..]
                            .iter()
                            .filter(|w| !w.starts_with('-'))
                            .map(|w| w.to_string()),
                    );
                }
            }
        }
        out
    }

    fn json_array(&self, op: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(self.runtime(op))
            .unwrap_or_else(|e| panic!("{op} is not in exec (JSON) form: {e}"));
        v.as_array()
            .unwrap_or_else(|| panic!("{op} is not an array"))
            .iter()
            .map(|x| x.as_str().expect("strings").to_string())
            .collect()
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn every_manifest_is_a_known_kind_with_labels() {
    let all = manifests();
    let kinds: BTreeSet<&str> = all.iter().map(|(_, v)| kind(v)).collect();
    for (file, v) in &all {
        let k = kind(v);
        assert!(
            [
                "ConfigMap",
                "Deployment",
                "Service",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "Route"
            ]
            .contains(&k),
            "{file}: unexpected kind {k:?}"
        );
        assert!(!s(v, &["apiVersion"]).is_empty(), "{file}: apiVersion");
        assert!(
            !s(v, &["metadata", "name"]).is_empty(),
            "{file}: metadata.name"
        );
        assert_eq!(
            at(v, &["metadata", "labels", "app.kubernetes.io/name"]).as_str(),
            Some("tlsgate"),
            "{file}: {k} is labelled app.kubernetes.io/name: tlsgate"
        );
        assert!(
            at(v, &["metadata", "namespace"]).is_null(),
            "{file}: no namespace (kubectl -n chooses it)"
        );
        if k == "Route" {
            assert_eq!(
                file, "openshift-route.yaml",
                "Routes stay in openshift-route.yaml, which plain Kubernetes skips"
            );
        }
    }
    for k in [
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Route",
    ] {
        assert!(kinds.contains(k), "conf/kubernetes has no {k}");
    }
}

#[test]
fn configmap_passes_tlsgate_check_with_the_example_credentials() {
    require_certs_example();
    let d = Deploy::load();
    let dir = tempfile::tempdir().unwrap();
    // The ticket keys are the Secret in the cluster; here, one made the
    // way the README says.
    let keys = tempfile::tempdir().unwrap();
    let out = run_tlsgate(
        &[
            "certs",
            "ticket-key",
            "--out",
            &keys.path().join("ticket-0.key").to_string_lossy(),
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
    let yaml = d.istio_text.replace(
        &format!("keyDirectory: {TICKET_KEYS_DIR}"),
        &format!("keyDirectory: {}", keys.path().display()),
    );
    assert_ne!(yaml, d.istio_text, "the ConfigMap reads {TICKET_KEYS_DIR}");
    std::fs::write(dir.path().join("tlsgate.yaml"), &yaml).unwrap();
    let conf = dir.path().to_string_lossy().into_owned();
    let creds = credentials_dir().to_string_lossy().into_owned();
    let out = run_tlsgate(
        &["check", "--config", &conf, "--credentials", &creds],
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "tlsgate check of the ConfigMap's tlsgate.yaml: {out}"
    );
    // Every credential the Gateway names was loaded.
    for name in d.credential_names() {
        assert!(
            out.stdout.contains(&name),
            "check did not load {name}: {out}"
        );
    }
    // And the Deployment mounts that file where the image reads its configuration.
    let cm_name = s(&d.configmap, &["metadata", "name"]);
    let (vol, path) = d
        .mounts()
        .into_iter()
        .find(|(v, _)| at(d.volume(v), &["configMap", "name"]).as_str() == Some(cm_name))
        .expect("the ConfigMap is mounted");
    assert_eq!(path, CONFIG_DIR, "volume {vol}");
}

#[test]
fn secrets_are_the_gateway_credential_names() {
    let d = Deploy::load();
    assert_eq!(
        s(d.runtime(), &["spec", "credentialsDir"]),
        CREDENTIALS_DIR,
        "GatewayRuntime credentialsDir"
    );
    let names = d.credential_names();
    assert!(!names.is_empty());
    let mut secrets = d.secret_mounts();
    // The one Secret that is no credential: the replicas' ticket keys.
    assert_eq!(
        secrets.remove(TICKET_KEYS_SECRET).as_deref(),
        Some(TICKET_KEYS_DIR),
        "the ticket keys are mounted where sessionTickets reads them"
    );
    assert_eq!(
        secrets.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "the Deployment's Secret volumes are exactly the credentialNames of the ConfigMap"
    );
    for (name, path) in &secrets {
        assert_eq!(
            path,
            &format!("{CREDENTIALS_DIR}/{name}"),
            "Secret {name} is mounted as its own credential folder"
        );
        assert!(
            credential(name).is_dir(),
            "certs-example/credentials/{name} exists, so `tlsgate check --credentials certs-example/credentials` works"
        );
    }
    // Mutual TLS needs the CA bundle in the Secret.
    for (_, _, _, tls) in d.servers() {
        let mode = at(&tls, &["mode"]).as_str().unwrap_or("");
        if mode.eq_ignore_ascii_case("MUTUAL") || mode.eq_ignore_ascii_case("OPTIONAL_MUTUAL") {
            let n = s(&tls, &["credentialName"]);
            assert!(credential(n).join("ca.crt").is_file(), "{n} has a ca.crt");
        }
    }
}

#[test]
fn ports_agree_across_gateway_container_service_probes_and_routes() {
    let d = Deploy::load();
    let cports = d.container_ports();
    let admin = d.admin_port();
    let gw_ports: BTreeSet<u16> = d.servers().iter().map(|x| x.0).collect();
    let https_ports: BTreeSet<u16> = d
        .servers()
        .iter()
        .filter(|x| x.1 == "HTTPS" || x.1 == "TLS")
        .map(|x| x.0)
        .collect();

    // Container ports = the Gateway's ports + admin.
    let mut expected = gw_ports.clone();
    expected.insert(admin);
    assert_eq!(
        cports.values().copied().collect::<BTreeSet<_>>(),
        expected,
        "container ports {cports:?} vs Gateway server ports {gw_ports:?} and admin {admin}"
    );

    // Probes: the admin port; readiness /healthz/ready, liveness
    // /healthz/live (a draining gateway is not ready, but alive: it must
    // not be restarted for it).
    for (probe, path) in [
        ("readinessProbe", "/healthz/ready"),
        ("livenessProbe", "/healthz/live"),
    ] {
        let p = at(d.container(), &[probe, "httpGet"]);
        assert!(!p.is_null(), "{probe} is an httpGet");
        assert_eq!(s(p, &["path"]), path, "{probe} path");
        assert_eq!(
            d.resolve_container_port(at(p, &["port"])),
            admin,
            "{probe} port"
        );
    }

    // Service: selects the pods, and its targetPorts are exactly the Gateway's ports.
    let pod_labels = at(&d.deployment, &["spec", "template", "metadata", "labels"]);
    for (k, v) in at(&d.service, &["spec", "selector"])
        .as_mapping()
        .expect("Service selector")
    {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "Service selector {k:?} matches the pods"
        );
    }
    let svc_ports = seq(&d.service, &["spec", "ports"]);
    let targets: BTreeSet<u16> = svc_ports
        .iter()
        .map(|p| d.resolve_container_port(at(p, &["targetPort"])))
        .collect();
    assert_eq!(
        targets, gw_ports,
        "Service targetPorts vs Gateway server ports"
    );
    assert!(
        !targets.contains(&admin),
        "the admin port stays off the Service"
    );

    // Routes: the Service, a TLS port, passthrough, one per HTTPS host.
    let svc_name = s(&d.service, &["metadata", "name"]);
    let mut route_hosts = BTreeSet::new();
    for r in &d.routes {
        assert_eq!(s(r, &["spec", "to", "kind"]), "Service");
        assert_eq!(
            s(r, &["spec", "to", "name"]),
            svc_name,
            "Route targets the Service"
        );
        let tp = at(r, &["spec", "port", "targetPort"]);
        // A Route's targetPort is a pod port (number) or a Service port name.
        let port = port_num(tp).unwrap_or_else(|| {
            let name = tp.as_str().expect("targetPort");
            let sp = svc_ports
                .iter()
                .find(|p| at(p, &["name"]).as_str() == Some(name))
                .unwrap_or_else(|| panic!("Route targetPort {name} is no Service port name"));
            d.resolve_container_port(at(sp, &["targetPort"]))
        });
        assert!(
            https_ports.contains(&port),
            "Route {} goes to {port}, not an HTTPS port of the Gateway {https_ports:?}",
            s(r, &["metadata", "name"])
        );
        assert_eq!(s(r, &["spec", "tls", "termination"]), "passthrough");
        route_hosts.insert(s(r, &["spec", "host"]).to_string());
    }
    let https_hosts: BTreeSet<String> = d
        .servers()
        .into_iter()
        .filter(|x| https_ports.contains(&x.0))
        .flat_map(|x| x.2)
        .collect();
    assert_eq!(
        route_hosts, https_hosts,
        "one passthrough Route per HTTPS host"
    );
}

#[test]
fn deployment_is_hardened_and_sized() {
    let d = Deploy::load();
    assert_eq!(at(&d.deployment, &["spec", "replicas"]).as_u64(), Some(2));
    let c = d.container();
    let sc = at(c, &["securityContext"]);
    assert_eq!(
        at(d.pod(), &["securityContext", "runAsNonRoot"]).as_bool(),
        Some(true)
    );
    assert_eq!(at(sc, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["allowPrivilegeEscalation"]).as_bool(), Some(false));
    assert!(
        seq(sc, &["capabilities", "drop"])
            .iter()
            .any(|x| x.as_str() == Some("ALL")),
        "capabilities dropped"
    );
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(!at(c, &["resources", k, r]).is_null(), "resources.{k}.{r}");
        }
    }
    // A read-only root: tlsgate's temp dir (pid file, upgrade socket) is an emptyDir.
    let (tmp_vol, _) = d
        .mounts()
        .into_iter()
        .find(|(_, p)| p == "/tmp")
        .expect("/tmp is mounted");
    assert!(
        !at(d.volume(&tmp_vol), &["emptyDir"]).is_null(),
        "/tmp is an emptyDir"
    );

    // Shutdown fits in the grace period.
    let grace = at(d.pod(), &["terminationGracePeriodSeconds"])
        .as_u64()
        .unwrap_or(30);
    let secs = |p: &str| -> u64 {
        at(d.runtime(), &["spec", "shutdown", p])
            .as_str()
            .map(|v| v.trim_end_matches('s').parse().expect("seconds"))
            .unwrap_or(0)
    };
    assert!(
        secs("gracePeriod") + secs("timeout") < grace,
        "shutdown.gracePeriod + shutdown.timeout < terminationGracePeriodSeconds ({grace})"
    );

    // The PodDisruptionBudget covers these pods and lets one go.
    let pod_labels = at(&d.deployment, &["spec", "template", "metadata", "labels"]);
    for (k, v) in at(&d.pdb, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .expect("PDB selector")
    {
        assert_eq!(pod_labels.get(k), Some(v), "PDB selector {k:?}");
    }
    let min = at(&d.pdb, &["spec", "minAvailable"])
        .as_u64()
        .expect("minAvailable");
    let replicas = at(&d.deployment, &["spec", "replicas"])
        .as_u64()
        .unwrap_or(1);
    assert!(
        (1..replicas).contains(&min),
        "minAvailable {min} keeps one pod up and still lets one of {replicas} go"
    );

    // The image is the one the README builds.
    let image = s(c, &["image"]);
    assert_eq!(image, format!("tlsgate:{}", workspace_version()));
}

#[test]
fn dockerfile_builds_like_ci_and_runs_like_the_manifests() {
    let df = Dockerfile::load();
    let d = Deploy::load();
    let froms = df.all("FROM");
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert!(
        froms[0].1.starts_with("rust:1-bookworm"),
        "build stage: {}",
        froms[0].1
    );
    assert_eq!(froms[1].1, "debian:bookworm-slim", "runtime stage");

    // The build: the README's command, with what .ci/run installs for it.
    let runs: Vec<&str> = df
        .all("RUN")
        .into_iter()
        .filter(|(s, _)| *s == 0)
        .map(|(_, r)| r)
        .collect();
    assert!(
        runs.iter().any(|r| r.contains(BUILD)),
        "the build stage runs `{BUILD}`"
    );
    let readme = readme();
    assert!(readme.contains(BUILD), "README shows `{BUILD}`");
    let ci =
        std::fs::read_to_string(workspace_root().join("scripts").join("install-deps")).unwrap();
    let build_pkgs = df.apt_packages(0);
    for tool in ["cmake", "perl", "make"] {
        assert!(
            ci.contains(&format!("need+=({tool})")),
            "scripts/install-deps installs {tool}"
        );
        assert!(
            build_pkgs.contains(tool),
            "the build stage installs {tool}: {build_pkgs:?}"
        );
    }
    let runtime_pkgs = df.apt_packages(1);
    for p in ["ca-certificates", "curl"] {
        assert!(
            runtime_pkgs.contains(p),
            "the runtime stage installs {p}: {runtime_pkgs:?}"
        );
    }

    // Non-root.
    let user = df.runtime("USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER is a numeric non-root UID (runAsNonRoot can verify it): {user}"
    );

    // Command: the Deployment runs the same.
    assert_eq!(df.json_array("ENTRYPOINT"), ["tlsgate"]);
    let cmd = df.json_array("CMD");
    assert_eq!(cmd, ["run", "--config", CONFIG_DIR]);
    let args: Vec<String> = seq(d.container(), &["args"])
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        args.is_empty() || args == cmd,
        "Deployment args {args:?} vs CMD {cmd:?}"
    );
    assert!(
        seq(d.container(), &["command"]).is_empty(),
        "the Deployment keeps the ENTRYPOINT"
    );

    // The credentials folder exists in the image.
    assert!(
        df.all("RUN")
            .iter()
            .any(|(s, r)| *s == 1 && r.contains(&format!("mkdir -p {CREDENTIALS_DIR}"))),
        "the runtime stage creates {CREDENTIALS_DIR}"
    );

    // Ports: EXPOSE = the Deployment's container ports.
    let cports: BTreeSet<u16> = d.container_ports().values().copied().collect();
    assert_eq!(df.exposed(), cports, "EXPOSE vs container ports");

    // HEALTHCHECK: the admin port's /healthz/ready, as the probes.
    let hc = df.runtime("HEALTHCHECK");
    let url = format!("http://127.0.0.1:{}/healthz/ready", d.admin_port());
    assert!(hc.contains(&url), "HEALTHCHECK polls {url}: {hc}");
    assert!(hc.contains("curl"), "HEALTHCHECK uses the installed curl");

    // .dockerignore keeps target/ out but not what the build needs.
    let ignore =
        std::fs::read_to_string(workspace_root().join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(ignored.contains(&"target/"), ".dockerignore has target/");
    for needed in [
        "ossl",
        "config",
        "certs",
        "core",
        "server",
        "gateway",
        "integration",
        "bench",
        "conf",
        "certs-example",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        assert!(
            !ignored.iter().any(|l| l.trim_end_matches('/') == needed),
            ".dockerignore must not drop {needed}: the build needs it"
        );
    }
}

#[test]
fn readme_deploying_agrees_with_the_files() {
    let df = Dockerfile::load();
    let d = Deploy::load();
    let readme = readme();
    let dep = section(&readme, "Deploying").expect("README has a 'Deploying' section");
    let blocks = code_blocks(&dep);
    let cmds: Vec<String> = blocks
        .iter()
        .filter(|b| b.lang == "sh")
        .flat_map(|b| commands(&b.body))
        .collect();

    // docker build: the tag the Deployment uses.
    let image = s(d.container(), &["image"]);
    assert!(
        cmds.iter()
            .any(|c| c == &format!("docker build -t {image} .")),
        "README builds {image}: {cmds:?}"
    );
    // docker run: published ports are exposed, the mount is the config dir.
    let run = cmds
        .iter()
        .find(|c| c.starts_with("docker run"))
        .expect("a docker run line");
    let words = shell_words(run).unwrap();
    let exposed = df.exposed();
    let mut published = BTreeSet::new();
    for w in words.windows(2) {
        match w[0].as_str() {
            "-p" => {
                let container: u16 = w[1].rsplit(':').next().unwrap().parse().unwrap();
                assert!(
                    exposed.contains(&container),
                    "README publishes {container}, not EXPOSEd"
                );
                published.insert(container);
            }
            "-v" => {
                let target = w[1].split(':').nth(1).unwrap();
                assert_eq!(
                    target, CONFIG_DIR,
                    "README mounts the configuration at {CONFIG_DIR}"
                );
            }
            _ => {}
        }
    }
    assert!(
        published.contains(&d.admin_port()),
        "README publishes the admin port"
    );
    assert_eq!(
        words.last().map(String::as_str),
        Some(image),
        "docker run {image}"
    );
    for p in &exposed {
        assert!(
            dep.contains(&format!("`{p}`")),
            "README's Deploying names port {p}"
        );
    }
    for p in [
        CONFIG_DIR,
        CREDENTIALS_DIR,
        "/healthz/ready",
        "passthrough",
        BUILD,
    ] {
        assert!(dep.contains(p), "README's Deploying mentions {p}");
    }

    // Every manifest is described; the Secrets it creates are the ones mounted.
    for f in std::fs::read_dir(k8s_dir()).unwrap().filter_map(|e| e.ok()) {
        let name = f.file_name().to_string_lossy().into_owned();
        assert!(
            dep.contains(&format!("`{name}`")),
            "README's Deploying describes {name}"
        );
    }
    let created: BTreeSet<String> = cmds
        .iter()
        .filter_map(|c| c.strip_prefix("kubectl create secret generic "))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(
        created,
        d.secret_mounts().keys().cloned().collect::<BTreeSet<_>>(),
        "README creates the Secrets the Deployment mounts"
    );
    let applied: Vec<String> = cmds
        .iter()
        .filter(|c| c.starts_with("kubectl apply"))
        .flat_map(|c| shell_words(c).unwrap())
        .filter(|w| w.starts_with("conf/kubernetes/"))
        .collect();
    for f in &applied {
        assert!(
            workspace_root().join(f).exists(),
            "README applies {f}, which does not exist"
        );
    }
    assert!(
        !applied.iter().any(|f| f.contains("route")),
        "plain Kubernetes has no Route kind: the kubectl apply line leaves it out"
    );

    // The container-configuration recipe works: run it and check the result.
    let recipe = blocks
        .iter()
        .find(|b| b.body.contains("conf/default.yaml"))
        .expect("a recipe that adapts conf/default.yaml");
    let tmp = tempfile::tempdir().unwrap();
    for link in ["conf", "certs-example"] {
        std::os::unix::fs::symlink(workspace_root().join(link), tmp.path().join(link)).unwrap();
    }
    let script = format!("set -euo pipefail\n{}", recipe.body);
    let out = run_command(
        std::ffi::OsStr::new("bash"),
        &["-c", &script],
        None,
        Duration::from_secs(30),
        Some(tmp.path()),
    );
    assert!(out.success(), "README's container recipe: {out}");
    let etc = tmp.path().join("tlsgate-etc");
    let yaml = std::fs::read_to_string(etc.join("tlsgate.yaml")).unwrap();
    assert!(
        !yaml.contains("bind: 127.0.0.1"),
        "the container config binds all addresses"
    );
    assert!(
        yaml.contains(&format!("admin: 0.0.0.0:{}", d.admin_port())),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("credentialsDir: {CREDENTIALS_DIR}")),
        "{yaml}"
    );
    let etc_s = etc.to_string_lossy();
    let creds = etc.join("credentials");
    let creds_s = creds.to_string_lossy();
    let out = run_tlsgate(
        &["check", "--config", &etc_s, "--credentials", &creds_s],
        Duration::from_secs(60),
    );
    assert!(
        out.success(),
        "tlsgate check of the README's container config: {out}"
    );
    assert!(out.stdout.contains("listener 0.0.0.0:"), "{out}");
    assert!(Path::new(&*creds_s).join("frontend-credential").is_dir());
}

/// What a rolling update and the autoscaler need: the pod leaves the
/// endpoints before tlsgate stops accepting, the whole drain fits in the
/// termination grace period, replicas spread, and the autoscaler targets
/// this Deployment.
#[test]
fn replicas_scale_and_drain_without_loss() {
    let d = Deploy::load();
    let pod = d.pod();
    let pre_stop = seq(d.container(), &["lifecycle", "preStop", "exec", "command"]);
    let words: Vec<&str> = pre_stop.iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(
        &words[..2],
        ["tlsgate", "drain"],
        "preStop drains: {words:?}"
    );
    let admin = format!("127.0.0.1:{}", d.admin_port());
    assert!(
        words.windows(2).any(|w| w == ["--admin", admin.as_str()]),
        "{words:?}"
    );
    let wait: u64 = words
        .windows(2)
        .find(|w| w[0] == "--wait")
        .and_then(|w| w[1].trim_end_matches('s').parse().ok())
        .expect("preStop waits a number of seconds");
    assert!(wait >= 3, "preStop waits {wait}s");
    let runtime = d.runtime();
    let secs = |path: &[&str]| -> u64 {
        let v = s(runtime, path);
        v.trim_end_matches('s')
            .parse()
            .unwrap_or_else(|_| panic!("{v}"))
    };
    let drain = secs(&["spec", "shutdown", "gracePeriod"]) + secs(&["spec", "shutdown", "timeout"]);
    let grace = at(pod, &["terminationGracePeriodSeconds"])
        .as_u64()
        .unwrap();
    assert!(
        wait + drain < grace,
        "preStop {wait}s + drain {drain}s fit in terminationGracePeriodSeconds {grace}"
    );
    let keys: Vec<&str> = seq(pod, &["topologySpreadConstraints"])
        .iter()
        .map(|c| s(c, &["topologyKey"]))
        .collect();
    assert!(
        keys.contains(&"topology.kubernetes.io/zone") && keys.contains(&"kubernetes.io/hostname")
    );
    assert_eq!(
        at(
            &d.deployment,
            &["spec", "strategy", "rollingUpdate", "maxUnavailable"]
        )
        .as_u64(),
        Some(0),
        "a replica is replaced only once its successor is ready"
    );
    let hpa = manifests()
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| kind(v) == "HorizontalPodAutoscaler")
        .expect("an HPA");
    assert_eq!(s(&hpa, &["spec", "scaleTargetRef", "kind"]), "Deployment");
    assert_eq!(
        s(&hpa, &["spec", "scaleTargetRef", "name"]),
        s(&d.deployment, &["metadata", "name"])
    );
    let metric = &seq(&hpa, &["spec", "metrics"])[0];
    assert_eq!(s(metric, &["resource", "name"]), "cpu");
    assert!(
        at(d.container(), &["resources", "requests", "cpu"]).is_string(),
        "CPU utilization needs a CPU request"
    );
    assert!(at(&hpa, &["spec", "minReplicas"]).as_u64().unwrap() >= 2);
    assert_eq!(
        s(runtime, &["spec", "sessionTickets", "keyDirectory"]),
        TICKET_KEYS_DIR
    );
}

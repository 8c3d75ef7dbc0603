//! Configuration files written into a temporary folder.

use std::path::{Path, PathBuf};

use crate::certs::credentials_dir;
use crate::{conf_file, free_port};

/// A temporary folder for YAML files (and credentials); removed on drop.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigDir {
    pub fn new() -> ConfigDir {
        ConfigDir {
            dir: tempfile::Builder::new()
                .prefix("tlsgate-conf-")
                .tempdir()
                .expect("create a temporary config folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `contents` to `<dir>/<name>` (parent folders created) and return the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create config subfolder");
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Write `template` with whole-number tokens replaced (see [`substitute`]).
    pub fn write_with(&self, name: &str, template: &str, subs: &[(&str, String)]) -> PathBuf {
        self.write(name, &substitute(template, subs))
    }
}

/// Replace each `from` by its `to` in one left-to-right pass (so a value put
/// in is never replaced again). A `from` made of digits only matches a whole
/// number, never the middle of a longer one.
pub fn substitute(text: &str, subs: &[(&str, String)]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        for (from, to) in subs {
            if from.is_empty() || !text[i..].starts_with(from) {
                continue;
            }
            let numeric = from.bytes().all(|b| b.is_ascii_digit());
            let end = i + from.len();
            if numeric {
                let before = i > 0 && bytes[i - 1].is_ascii_digit();
                let after = end < bytes.len() && bytes[end].is_ascii_digit();
                if before || after {
                    continue;
                }
            }
            out.push_str(to);
            i = end;
            continue 'outer;
        }
        let ch = text[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Ports to put into `conf/seed-000-ingress.yaml`.
#[derive(Debug, Clone, Copy)]
pub struct Seed000Ports {
    /// The HTTPS port (8443 in the file).
    pub gateway: u16,
    /// The `frontend` ServiceEntry endpoint (8080 in the file).
    pub frontend: u16,
    /// The `backend` v1 endpoint (8081 in the file).
    pub backend_v1: u16,
    /// The `backend` v2 endpoint (8082 in the file).
    pub backend_v2: u16,
    /// The GatewayRuntime admin address (15021 in the file); tests also pass
    /// `--admin`, this only keeps parallel gateways off a shared port.
    pub admin: u16,
}

impl Seed000Ports {
    /// A free gateway port, every backend on `backend`.
    pub fn new(backend: u16) -> Seed000Ports {
        Seed000Ports {
            gateway: free_port(),
            frontend: backend,
            backend_v1: backend,
            backend_v2: backend,
            admin: free_port(),
        }
    }
}

/// `conf/seed-000-ingress.yaml` with its ports replaced and its relative
/// `credentialsDir` made absolute (the copy lives in a temporary folder).
pub fn seed000_yaml(p: &Seed000Ports) -> String {
    let path = conf_file("seed-000-ingress.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    substitute(
        &text,
        &[
            (
                "../certs-example/credentials",
                credentials_dir().display().to_string(),
            ),
            ("8443", p.gateway.to_string()),
            ("8080", p.frontend.to_string()),
            ("8081", p.backend_v1.to_string()),
            ("8082", p.backend_v2.to_string()),
            ("15021", p.admin.to_string()),
        ],
    )
}

/// The start every hand-written test configuration shares: a
/// GatewayRuntime using `creds`, and a Gateway `gw` whose `servers:` list
/// the caller appends.
pub fn gateway_preamble(creds: &Path) -> String {
    format!(
        "apiVersion: tlsgate.io/v1
kind: GatewayRuntime
metadata:
  name: rt
spec:
  credentialsDir: {}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
",
        creds.display()
    )
}

/// A VirtualService sending every request for `hosts` (YAML flow items,
/// e.g. `frontend.example.com` or `"*"`) through gateway `gw` to
/// 127.0.0.1:`port`; a whole document, to follow a `---`.
pub fn route_all(hosts: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: all
spec:
  hosts: [{hosts}]
  gateways: [gw]
  http:
  - route:
    - destination:
        host: 127.0.0.1
        port: {{number: {port}}}
"
    )
}

/// A plain-HTTP gateway on 127.0.0.1:`port` for `host`, routing every
/// request to the service `app.internal` (port 80), whose endpoints are
/// 127.0.0.1:`endpoints`, under a DestinationRule whose `trafficPolicy`
/// is `traffic_policy` (YAML, indented 4 spaces). For tests of a
/// destination's policies: balancing, limits, ejection.
pub fn app_service_yaml(port: u16, host: &str, endpoints: &[u16], traffic_policy: &str) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|p| format!("  - address: 127.0.0.1\n    ports: {{http: {p}}}\n"))
        .collect();
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    bind: 127.0.0.1
    hosts: [{host}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: app
spec:
  hosts: [{host}]
  gateways: [gw]
  http:
  - route:
    - destination:
        host: app.internal
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: app
spec:
  hosts: [app.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: app
spec:
  host: app.internal
  trafficPolicy:
{traffic_policy}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_whole_numbers_once() {
        let subs = [("8443", "38080".to_string()), ("8080", "1".to_string())];
        assert_eq!(
            substitute("a: 8443\nb: 8080\nc: 18080\nd: 80801\n", &subs),
            "a: 38080\nb: 1\nc: 18080\nd: 80801\n"
        );
        let subs = [("../x", "/abs/x".to_string())];
        assert_eq!(substitute("dir: ../x/y é", &subs), "dir: /abs/x/y é");
    }
}

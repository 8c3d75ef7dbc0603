//! Credentials directories and configurations for the runtime's unit tests:
//! real certificates (certgen), plain folders or kubelet Secret volumes.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::certgen::{make_ca, make_leaf, CaSpec, Issued, LeafSpec, Usage};
use crate::config::{load_str, ConfigErrors, Model, Overrides};

pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    ca: Issued,
}

/// A Gateway `gw` with one HTTPS server per `(hosts, mode, credentialName)`
/// (`hosts` a YAML flow item), all on port 8443.
pub(crate) fn gateway(servers: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers:\n",
    );
    for (host, mode, credential) in servers {
        yaml.push_str(&format!(
            "  - port: {{number: 8443, protocol: HTTPS}}\n    hosts: [{host}]\n    \
             tls: {{mode: {mode}, credentialName: {credential}}}\n"
        ));
    }
    yaml
}

impl Fixture {
    pub(crate) const ALLOW_EXPIRED: &'static str =
        "apiVersion: tlsgate.io/v1\nkind: GatewayRuntime\nmetadata: {name: rt}\n\
         spec: {reload: {allowExpiredCredentials: true}}\n";

    pub(crate) fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            ca: make_ca(&CaSpec::new("Example", "example.com")).unwrap(),
        }
    }

    pub(crate) fn creds(&self) -> PathBuf {
        self.dir.path().join("creds")
    }

    pub(crate) fn cert_path(&self, name: &str) -> PathBuf {
        self.creds().join(name).join("tls.crt")
    }

    /// `test.yaml` holding `yaml`, with this fixture's credentials dir.
    pub(crate) fn model(&self, yaml: &str) -> Result<Model, ConfigErrors> {
        let overrides = Overrides {
            admin: None,
            credentials_dir: Some(self.creds()),
            tls_library: None,
        };
        load_str(Path::new("test.yaml"), yaml, self.dir.path(), &overrides)
    }

    /// Writes `tls.crt` (leaf + CA) and `tls.key` for `dns` into `folder`,
    /// valid from `starts_in_days` days from now; returns the serial.
    fn write_server(&self, folder: &Path, dns: &[&str], starts_in_days: u32) -> String {
        let mut spec = LeafSpec::new(Usage::Server, dns[0]);
        spec.dns = dns.iter().map(|d| d.to_string()).collect();
        spec.starts_in_days = starts_in_days;
        let leaf = make_leaf(&spec, &self.ca).unwrap();
        let mut chain = leaf.cert_pem().unwrap();
        chain.extend(self.ca.cert_pem().unwrap());
        fs::create_dir_all(folder).unwrap();
        // Written aside and renamed in, as a rotation does.
        for (file, data) in [("tls.key", leaf.key_pem().unwrap()), ("tls.crt", chain)] {
            let tmp = folder.join(format!(".{file}.tmp"));
            fs::write(&tmp, data).unwrap();
            fs::rename(&tmp, folder.join(file)).unwrap();
        }
        let serial = leaf.cert.serial_number().to_bn().unwrap();
        serial.to_hex_str().unwrap().to_ascii_lowercase()
    }

    /// The folder `creds/<name>/` with a server certificate for `dns`.
    pub(crate) fn server(&self, name: &str, dns: &[&str], starts_in_days: u32) -> String {
        self.write_server(&self.creds().join(name), dns, starts_in_days)
    }

    /// `creds/<name>/` as kubelet writes a Secret volume: the files in
    /// `<version>/`, `..data -> <version>`, `tls.crt -> ..data/tls.crt`.
    /// Called again with a new version, it swaps `..data` atomically.
    pub(crate) fn volume(&self, name: &str, version: &str, dns: &[&str]) -> String {
        let vol = self.creds().join(name);
        let serial = self.write_server(&vol.join(version), dns, 0);
        for f in ["tls.crt", "tls.key"] {
            if fs::symlink_metadata(vol.join(f)).is_err() {
                symlink(Path::new("..data").join(f), vol.join(f)).unwrap();
            }
        }
        self.swap_data(name, version);
        serial
    }

    /// Points `creds/<name>/..data` at `to` (which need not exist) by
    /// renaming a new symlink over it, as kubelet does.
    pub(crate) fn swap_data(&self, name: &str, to: &str) {
        let vol = self.creds().join(name);
        symlink(to, vol.join("..data_tmp")).unwrap();
        fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    }

    /// A client certificate of this fixture's CA, with a SPIFFE URI.
    pub(crate) fn client(&self, cn: &str, uri: &str) -> Issued {
        let mut spec = LeafSpec::new(Usage::Client, cn);
        spec.uris = vec![uri.to_string()];
        make_leaf(&spec, &self.ca).unwrap()
    }

    /// The fixture's CA, with its key (to sign CRLs).
    pub(crate) fn ca(&self) -> &Issued {
        &self.ca
    }

    /// The fixture's CA certificate (what a client sends after its leaf).
    pub(crate) fn ca_cert(&self) -> openssl::x509::X509 {
        self.ca.cert.clone()
    }

    /// Writes the CA's certificate to `creds/<rel>` (a CA bundle).
    pub(crate) fn ca_bundle(&self, rel: &str) {
        let path = self.creds().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, self.ca.cert_pem().unwrap()).unwrap();
    }

    /// Replaces `creds/<name>/<file>` by a symlink to itself.
    pub(crate) fn loop_file(&self, name: &str, file: &str) {
        let path = self.creds().join(name).join(file);
        fs::remove_file(&path).unwrap();
        symlink(file, &path).unwrap();
    }
}

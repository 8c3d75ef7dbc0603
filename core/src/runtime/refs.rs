//! Where the configuration names each credential, and what it asks of it
//! there (a CA bundle to verify peers with, names for the hosts it serves).
//!
//! These are checked each time the credential is loaded for a runtime, not
//! while the YAML is read: a failure is then about one credential, so a
//! reload refuses that credential alone (its last good version keeps
//! serving) while at start it is an error naming the document and field.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{
    ClientTls, ClientTlsMode, ConfigError, CredentialSource, DestinationRule, DocId, HostPattern,
    Model, ServerTlsMode,
};
use crate::credentials::{self, Credential, CredentialError};

/// One place that names a credential.
#[derive(Debug)]
pub(super) struct Reference {
    doc: DocId,
    /// The `tls` block naming it, e.g. `spec.servers[0].tls`.
    tls: String,
    /// The inline certificate field of that block, for errors about it.
    cert_field: &'static str,
    /// Peers are verified with the credential's CA bundle.
    needs_ca: bool,
    /// Exact hosts the certificate is presented for, each with its field.
    /// `*` and `*.suffix` hosts are not checked: which names a client will
    /// ask for under them is not known here.
    hosts: Vec<(String, String)>,
}

/// Why a credential may not serve, located at the reference it fails.
#[derive(Debug)]
pub(super) struct Failure {
    doc: DocId,
    field: String,
    pub error: CredentialError,
}

impl From<Failure> for ConfigError {
    fn from(f: Failure) -> ConfigError {
        ConfigError::field(&f.doc, f.field, f.error.to_string())
    }
}

impl Reference {
    fn failure(&self, source: &CredentialSource, error: CredentialError) -> Failure {
        let field = match (&error, source) {
            (CredentialError::HostNotCovered { host, .. }, _) => self
                .hosts
                .iter()
                .find(|(h, _)| h == host)
                .map_or_else(|| self.tls.clone(), |(_, f)| f.clone()),
            (_, CredentialSource::Named(_)) => format!("{}.credentialName", self.tls),
            (e, CredentialSource::Files { key, ca, .. }) => {
                let inline = match e.path() {
                    Some(p) if p == key => "privateKey",
                    Some(p) if Some(p) == ca.as_deref() => "caCertificates",
                    _ if matches!(e, CredentialError::NoCaBundle { .. }) => "caCertificates",
                    _ => self.cert_field,
                };
                format!("{}.{inline}", self.tls)
            }
        };
        Failure {
            doc: self.doc.clone(),
            field,
            error,
        }
    }
}

/// Loads `source` and checks it for every reference (never empty) to it.
/// A load or validity error is located at the first reference; each unmet
/// requirement at the reference that asks it.
pub(super) fn admit(
    source: &CredentialSource,
    refs: &[Reference],
    credentials_dir: &Path,
    allow_expired: bool,
) -> Result<Credential, Vec<Failure>> {
    let first = |e| vec![refs[0].failure(source, e)];
    let c = credentials::load(source, credentials_dir).map_err(first)?;
    c.check_validity(allow_expired).map_err(first)?;
    let unmet = unmet(&c, refs, credentials_dir);
    if unmet.is_empty() {
        Ok(c)
    } else {
        Err(unmet)
    }
}

/// What the references ask of `c` that it does not give. Also asked of the
/// last good version before it is kept: a configuration change (a new
/// host, a mode that verifies clients) can make it unfit too, and then the
/// configuration is what is wrong.
pub(super) fn unmet(c: &Credential, refs: &[Reference], credentials_dir: &Path) -> Vec<Failure> {
    let mut out = Vec::new();
    for r in refs {
        if r.needs_ca {
            if let Err(e) = c.require_ca(credentials_dir) {
                out.push(r.failure(&c.source, e));
            }
        }
        for (host, _) in &r.hosts {
            if let Err(e) = c.require_host(host) {
                out.push(r.failure(&c.source, e));
            }
        }
    }
    out
}

/// Every credential source the model names, with every reference to it in
/// model order (Gateways, then DestinationRules).
pub(super) fn credential_references(model: &Model) -> BTreeMap<CredentialSource, Vec<Reference>> {
    let mut refs: BTreeMap<CredentialSource, Vec<Reference>> = BTreeMap::new();
    for gw in &model.gateways {
        for s in &gw.servers {
            let Some(tls) = &s.tls else { continue };
            // The mesh identity names a workload (`spiffe://...`), not the
            // hosts an ISTIO_MUTUAL server serves, as in Istio.
            let mesh_identity = tls.trust_domain.is_some();
            let hosts = s
                .hosts
                .iter()
                .filter(|_| !mesh_identity)
                .enumerate()
                .filter_map(|(j, h)| match h {
                    HostPattern::Exact(h) => {
                        Some((h.clone(), format!("spec.servers[{}].hosts[{j}]", s.index)))
                    }
                    HostPattern::Suffix(_) | HostPattern::Any => None,
                })
                .collect();
            refs.entry(tls.credential.clone())
                .or_default()
                .push(Reference {
                    doc: gw.id.clone(),
                    tls: format!("spec.servers[{}].tls", s.index),
                    cert_field: "serverCertificate",
                    // OPTIONAL_MUTUAL still verifies a certificate offered.
                    needs_ca: tls.mode != ServerTlsMode::Simple,
                    hosts,
                });
        }
    }
    for dr in &model.destination_rules {
        for (field, t) in client_tls_blocks(dr) {
            let Some(src) = &t.credential else { continue };
            refs.entry(src.clone()).or_default().push(Reference {
                doc: dr.id.clone(),
                tls: field,
                cert_field: "clientCertificate",
                // SIMPLE origination names a credential for its CA bundle
                // (MUTUAL also for its certificate and key); ISTIO_MUTUAL
                // trusts the mesh CA only, never the system roots.
                needs_ca: t.mode == ClientTlsMode::Simple || t.trust_domain.is_some(),
                hosts: Vec::new(),
            });
        }
    }
    refs
}

/// A DestinationRule's `caCertificates` is read when a request first needs
/// it (see proxy/origination.rs); it must at least be there.
/// Every `tls` block of a DestinationRule, with its field path.
pub(super) fn client_tls_blocks(dr: &DestinationRule) -> Vec<(String, &ClientTls)> {
    let policies = std::iter::once(("spec.trafficPolicy".to_string(), &dr.traffic_policy)).chain(
        dr.subsets.iter().enumerate().filter_map(|(i, s)| {
            s.traffic_policy
                .as_ref()
                .map(|p| (format!("spec.subsets[{i}].trafficPolicy"), p))
        }),
    );
    let mut out = Vec::new();
    for (path, policy) in policies {
        out.extend(policy.tls.iter().map(|t| (format!("{path}.tls"), t)));
        out.extend(
            policy
                .port_tls
                .iter()
                .enumerate()
                .map(|(i, (_, t))| (format!("{path}.portLevelSettings[{i}].tls"), t)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{gateway, Fixture};
    use crate::config::ConfigErrors;
    use crate::runtime::{credential_errors, Runtime};

    fn start_errors(f: &Fixture, yaml: &str) -> Vec<String> {
        match Runtime::build(f.model(yaml).unwrap(), 1) {
            Ok(_) => panic!("built a runtime with a broken credential"),
            Err(ConfigErrors(e)) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// README quotes this text: it must not change.
    #[test]
    fn a_missing_credential_names_its_field() {
        let f = Fixture::new();
        f.server("a", &["a.example.com"], 0);
        let yaml = gateway(&[
            ("a.example.com", "SIMPLE", "a"),
            ("x.example.com", "SIMPLE", "x"),
        ]);
        assert_eq!(
            start_errors(&f, &yaml),
            [format!(
                "test.yaml: Gateway/gw: spec.servers[1].tls.credentialName: no credential 'x' in {}",
                f.creds().display()
            )]
        );
    }

    #[test]
    fn mutual_needs_a_ca_bundle_in_the_folder_or_beside_it() {
        let f = Fixture::new();
        f.server("a", &["a.example.com"], 0);
        let yaml = gateway(&[("a.example.com", "MUTUAL", "a")]);
        assert_eq!(
            start_errors(&f, &yaml),
            [format!(
                "test.yaml: Gateway/gw: spec.servers[0].tls.credentialName: no CA bundle for \
                 credential 'a' in {}: expected a/ca.crt, a/cacert or a-cacert/ca.crt",
                f.creds().display()
            )]
        );
        // Istio's separate `<name>-cacert` Secret.
        f.ca_bundle("a-cacert/cacert");
        assert!(Runtime::build(f.model(&yaml).unwrap(), 1).is_ok());
    }

    /// A reload that makes a server MUTUAL while its credential has no CA
    /// bundle is the configuration's mistake: the whole reload is refused.
    #[test]
    fn a_mode_the_kept_credential_cannot_serve_is_a_configuration_error() {
        let f = Fixture::new();
        f.server("a", &["a.example.com"], 0);
        let rt = Runtime::build(
            f.model(&gateway(&[("a.example.com", "SIMPLE", "a")]))
                .unwrap(),
            1,
        )
        .unwrap();
        let mutual = f
            .model(&gateway(&[("a.example.com", "MUTUAL", "a")]))
            .unwrap();
        let e = Runtime::rebuild(mutual, &rt, 2).unwrap_err().to_string();
        assert!(e.contains("no CA bundle for credential 'a'"), "{e}");
    }

    #[test]
    fn inline_files_name_the_field_of_the_file_at_fault() {
        let f = Fixture::new();
        f.server("a", &["a.example.com"], 0);
        let dir = f.creds().join("a");
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g}}\nspec:\n  servers:\n  \
             - port: {{number: 8443, protocol: HTTPS}}\n    hosts: [a.example.com]\n    tls: {{mode: SIMPLE, \
             serverCertificate: {}, privateKey: {}}}\n",
            dir.join("tls.crt").display(),
            dir.join("nope.key").display()
        );
        assert_eq!(
            start_errors(&f, &yaml),
            [format!(
                "test.yaml: Gateway/g: spec.servers[0].tls.privateKey: missing file {}",
                dir.join("nope.key").display()
            )]
        );
    }

    #[test]
    fn simple_origination_by_credential_needs_its_ca_and_ca_files_must_exist() {
        let f = Fixture::new();
        f.server("a", &["a.example.com"], 0);
        let dr = |tls: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr}}\n\
                 spec:\n  host: a.example.com\n  trafficPolicy:\n    tls: {{{tls}}}\n"
            )
        };
        let e = start_errors(&f, &dr("mode: SIMPLE, credentialName: a"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "test.yaml: DestinationRule/dr: spec.trafficPolicy.tls.credentialName: no CA bundle"
            ),
            "{e:?}"
        );
        // MUTUAL takes the certificate and key; a CA bundle is optional.
        assert!(
            Runtime::build(f.model(&dr("mode: MUTUAL, credentialName: a")).unwrap(), 1).is_ok()
        );

        let e = start_errors(&f, &dr("mode: SIMPLE, caCertificates: /nonexistent/ca.pem"));
        assert_eq!(
            e,
            [
                "test.yaml: DestinationRule/dr: spec.trafficPolicy.tls.caCertificates: \
              missing file /nonexistent/ca.pem"
            ]
        );
    }

    /// What `tlsgate check` adds when other documents failed to load.
    #[test]
    fn credential_errors_of_a_partial_model() {
        let f = Fixture::new();
        let yaml = gateway(&[("x.example.com", "SIMPLE", "x")]);
        let e: Vec<String> = credential_errors(&f.model(&yaml).unwrap())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("no credential 'x'"), "{e:?}");
    }
}

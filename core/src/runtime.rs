//! The serving state: one immutable [`Runtime`] per configuration
//! generation, published through one `ArcSwap`.
//!
//! Handshakes read the current runtime with `load_full()` and keep it for
//! the connection; each request pins the current one with `load_full()` so
//! that a reload in the middle of a request cannot change its route.
//!
//! A reload ([`Runtime::rebuild`]) builds the next runtime beside the live
//! one. Each credential is loaded and checked on its own (`refs.rs` says
//! what each place that names it asks of it): a broken one keeps its last
//! good version (and records why), so one bad file or Secret never stops
//! the other credentials or the configuration from updating.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::config::{ConfigError, ConfigErrors, CredentialSource, Model};
use crate::credentials::{Credential, CredentialInfo};
use crate::origin::Origination;
use crate::route::{Destination, RouteTable};
use crate::tls::TlsPolicy;

mod cas;
mod refs;
mod tickets;

pub use cas::CaBundle;
pub use tickets::TicketKeys;

pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

pub struct Runtime {
    /// Starts at 1 and grows by one with every published reload.
    pub generation: u64,
    pub model: Arc<Model>,
    pub credentials: BTreeMap<CredentialSource, Arc<Credential>>,
    pub credential_status: BTreeMap<CredentialSource, CredentialStatus>,
    pub routes: RouteTable,
    pub tls: TlsPolicy,
    /// DestinationRule `caCertificates` files, by path.
    pub ca_bundles: BTreeMap<PathBuf, Arc<CaBundle>>,
    pub ca_status: BTreeMap<PathBuf, CredentialStatus>,
    /// Session ticket keys (shared files, or this process's own).
    pub tickets: Arc<TicketKeys>,
    /// Why the newest ticket key files were refused (the last good keys
    /// stay).
    pub tickets_error: Option<String>,
    /// The upstream TLS of every compiled destination that originates it,
    /// by the destination's address (destinations live as long as `routes`).
    originations: HashMap<usize, Arc<Origination>>,
}

/// What `/certs` says of a credential beyond its certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialStatus {
    /// Generation in which the serving version was loaded.
    pub loaded_generation: u64,
    /// Why the newest files were refused, while the last good version serves.
    pub last_error: Option<String>,
}

/// A credential or CA bundle whose newest files were refused on a reload.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub subject: Subject,
    /// How logs and metrics name it.
    pub credential: String,
    pub reason: String,
}

/// What a refusal is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Credential(CredentialSource),
    CaBundle(PathBuf),
    TicketKeys,
}

/// One credential as `/certs` shows it.
#[derive(Debug, Serialize)]
pub struct CertView<'a> {
    #[serde(flatten)]
    pub info: &'a CredentialInfo,
    #[serde(flatten)]
    pub status: Option<&'a CredentialStatus>,
    /// How its clients' certificates are checked for revocation, when
    /// they are: policy, and the CRLs fetched from URLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationView>,
    /// With `ocspStapling.fetch`: each served certificate's responder,
    /// the response in use and how fetching went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ocsp_fetch: Vec<OcspFetchView>,
}

/// `/certs`: one served certificate's fetched OCSP response.
#[derive(Debug, serde::Serialize)]
pub struct OcspFetchView {
    pub certificate: String,
    pub urls: Vec<String>,
    pub response: Option<crate::credentials::OcspInfo>,
    pub fetch: crate::revocation::FetchStatus,
}

/// `/certs`: a credential's revocation checking.
#[derive(Debug, serde::Serialize)]
pub struct RevocationView {
    pub stale_crl: crate::config::StaleCrl,
    pub leaf_only: bool,
    pub fetched: Vec<FetchedCrlView>,
}

/// `/certs`: one CRL URL, its CRL now in use and how fetching went.
#[derive(Debug, serde::Serialize)]
pub struct FetchedCrlView {
    pub url: String,
    pub crl: Option<crate::credentials::CrlInfo>,
    pub fetch: crate::revocation::FetchStatus,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The first runtime: every credential must load.
    pub fn build(model: Model, generation: u64) -> Result<Runtime, ConfigErrors> {
        Self::assemble(model, generation, None).map(|(rt, _)| rt)
    }

    /// The next runtime after `prev`: a credential that fails to load or
    /// check keeps `prev`'s version (reported in the refusals); one that
    /// `prev` never had, or whose kept version the new configuration asks
    /// more of than it has (a host it does not name, a CA bundle it lacks),
    /// is an error, as at start. Unchanged credentials are shared with
    /// `prev`, so sessions bound to them keep resuming.
    pub fn rebuild(
        model: Model,
        prev: &Runtime,
        generation: u64,
    ) -> Result<(Runtime, Vec<Refusal>), ConfigErrors> {
        Self::assemble(model, generation, Some(prev))
    }

    fn assemble(
        model: Model,
        generation: u64,
        prev: Option<&Runtime>,
    ) -> Result<(Runtime, Vec<Refusal>), ConfigErrors> {
        let loaded = load_credentials(&model, generation, prev);
        let cas = cas::load(&model, generation, prev);
        let errors: Vec<ConfigError> = loaded.errors.into_iter().chain(cas.errors).collect();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let routes = RouteTable::compile(&model)?;
        let tls = TlsPolicy::build(&model, &loaded.credentials)?;
        let mut originations = HashMap::new();
        for dest in routes.destinations() {
            let Some(t) = &dest.tls else { continue };
            // Every credential and CA bundle named loaded (or kept its last
            // good version) above, so this only assembles what is there.
            match Origination::build(t, &dest.host, dest.h2, &loaded.credentials, &cas.bundles) {
                Ok(o) => {
                    originations.insert(Arc::as_ptr(dest) as usize, Arc::new(o));
                }
                Err(e) => {
                    return Err(ConfigErrors(vec![ConfigError::File {
                        file: model.sources.first().cloned().unwrap_or_default(),
                        message: format!("destination {}: upstream TLS: {e}", dest.name),
                    }]))
                }
            }
        }
        let mut refusals = loaded.refusals;
        refusals.extend(cas.refusals);
        let (tickets, tickets_error) = match tickets::load(&model.runtime.session_tickets) {
            Ok(t) => (Arc::new(t), None),
            // A broken key file keeps the keys that were good, as a
            // credential does; at start there are none to keep.
            Err(e) => match prev {
                Some(p) if p.model.runtime.session_tickets.from_files() => {
                    refusals.push(Refusal {
                        subject: Subject::TicketKeys,
                        credential: "sessionTickets".into(),
                        reason: e.clone(),
                    });
                    (p.tickets.clone(), Some(e))
                }
                _ => {
                    return Err(ConfigErrors(vec![ConfigError::File {
                        file: model.sources.first().cloned().unwrap_or_default(),
                        message: format!("GatewayRuntime spec.sessionTickets: {e}"),
                    }]))
                }
            },
        };
        let rt = Runtime {
            generation,
            model: Arc::new(model),
            credentials: loaded.credentials,
            credential_status: loaded.status,
            routes,
            tls,
            ca_bundles: cas.bundles,
            ca_status: cas.status,
            tickets,
            tickets_error,
            originations,
        };
        Ok((rt, refusals))
    }

    /// The upstream TLS of `dest` (built with this runtime); `None` for
    /// plain text. A wildcard ServiceEntry host's destination, made per
    /// request, gets its origination assembled from this runtime's loaded
    /// credentials and CA bundles (no file is read).
    pub fn origination(&self, dest: &Arc<Destination>) -> Option<Arc<Origination>> {
        let tls = dest.tls.as_ref()?;
        if let Some(o) = self.originations.get(&(Arc::as_ptr(dest) as usize)) {
            return Some(o.clone());
        }
        Origination::build(
            tls,
            &dest.host,
            dest.h2,
            &self.credentials,
            &self.ca_bundles,
        )
        .ok()
        .map(Arc::new)
    }

    /// Why the newest files of `subject` were refused, while its last good
    /// version serves.
    pub fn last_error(&self, subject: &Subject) -> Option<&str> {
        let st = match subject {
            Subject::Credential(src) => self.credential_status.get(src),
            Subject::CaBundle(path) => self.ca_status.get(path),
            Subject::TicketKeys => return self.tickets_error.as_deref(),
        };
        st.and_then(|st| st.last_error.as_deref())
    }

    pub fn shared(self) -> SharedRuntime {
        Arc::new(ArcSwap::from_pointee(self))
    }

    /// Every credential for `/certs`, with its reload status.
    pub fn cert_views(&self) -> Vec<CertView<'_>> {
        self.credentials
            .iter()
            .map(|(src, c)| CertView {
                info: &c.info,
                status: self.credential_status.get(src),
                revocation: self.revocation_of(src).map(|r| RevocationView {
                    stale_crl: r.policy.stale,
                    leaf_only: r.policy.leaf_only,
                    fetched: r
                        .all_slots()
                        .iter()
                        .map(|s| FetchedCrlView {
                            url: s.url.clone(),
                            crl: s.current().map(|c| c.info(&s.url)),
                            fetch: s.status(),
                        })
                        .collect(),
                }),
                ocsp_fetch: self
                    .tls
                    .policies()
                    .find(|p| p.credential.source == *src)
                    .map(|p| {
                        p.ocsp_slots
                            .iter()
                            .flatten()
                            .map(|s| OcspFetchView {
                                certificate: s.fingerprint.clone(),
                                urls: s.urls.clone(),
                                response: s.current().map(|c| c.info()),
                                fetch: s.status(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The revocation checking of the servers that verify clients with
    /// credential `src` (the same for all of them: it is the credential's).
    pub fn revocation_of(
        &self,
        src: &CredentialSource,
    ) -> Option<&Arc<crate::revocation::Revocation>> {
        self.tls
            .policies()
            .find(|p| p.requests_client_cert() && p.credential.source == *src)
            .map(|p| &p.revocation)
            .filter(|r| r.is_active())
    }
}

/// Every credential problem of `model`, as at start (no last good version
/// to keep). `tlsgate check` adds these to the errors of a configuration
/// that did not fully load, so that one run reports everything.
pub fn credential_errors(model: &Model) -> Vec<ConfigError> {
    let mut errors = load_credentials(model, 1, None).errors;
    errors.extend(cas::load(model, 1, None).errors);
    errors
}

#[derive(Default)]
struct LoadedCredentials {
    credentials: BTreeMap<CredentialSource, Arc<Credential>>,
    status: BTreeMap<CredentialSource, CredentialStatus>,
    refusals: Vec<Refusal>,
    errors: Vec<ConfigError>,
}

/// Loads and checks every credential `model` names, each on its own: one
/// that fails keeps `prev`'s version (a refusal) when that version still
/// meets what the configuration asks of it, else it is an error.
fn load_credentials(model: &Model, generation: u64, prev: Option<&Runtime>) -> LoadedCredentials {
    let dir = &model.runtime.credentials_dir;
    let allow_expired = model.runtime.reload.allow_expired_credentials;
    let mut out = LoadedCredentials::default();
    for (source, refs) in refs::credential_references(model) {
        let admitted = refs::admit(&source, &refs, dir, allow_expired);
        let previous = prev.and_then(|p| {
            Some((
                p.credentials.get(&source)?,
                p.credential_status.get(&source)?,
            ))
        });
        let (credential, status) = match (admitted, previous) {
            (Ok(new), Some((old, st))) if new.content_id() == old.content_id() => {
                // The files are good again (or never changed): whatever
                // was refused before no longer stands.
                let st = CredentialStatus {
                    loaded_generation: st.loaded_generation,
                    last_error: None,
                };
                (old.clone(), st)
            }
            (Ok(new), _) => {
                let st = CredentialStatus {
                    loaded_generation: generation,
                    last_error: None,
                };
                (Arc::new(new), st)
            }
            (Err(failures), Some((old, st))) => {
                let unfit = refs::unmet(old, &refs, dir);
                if !unfit.is_empty() {
                    out.errors.extend(unfit.into_iter().map(ConfigError::from));
                    continue;
                }
                let reason = failures
                    .iter()
                    .map(|f| f.error.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                out.refusals.push(Refusal {
                    subject: Subject::Credential(source.clone()),
                    credential: source.to_string(),
                    reason: reason.clone(),
                });
                let st = CredentialStatus {
                    loaded_generation: st.loaded_generation,
                    last_error: Some(reason),
                };
                (old.clone(), st)
            }
            (Err(failures), None) => {
                out.errors
                    .extend(failures.into_iter().map(ConfigError::from));
                continue;
            }
        };
        out.credentials.insert(source.clone(), credential);
        out.status.insert(source, status);
    }
    out
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::{gateway, Fixture};
    use super::*;

    fn serial(rt: &Runtime, name: &str) -> String {
        rt.credentials[&CredentialSource::Named(name.into())]
            .info
            .serial
            .clone()
    }

    fn last_error(rt: &Runtime, name: &str) -> Option<String> {
        rt.credential_status[&CredentialSource::Named(name.into())]
            .last_error
            .clone()
    }

    /// Generation 1 serving `a.example.com` with credential `a`, and the
    /// serial it serves.
    fn serving_a(f: &Fixture, yaml: &str) -> (Runtime, String) {
        let old = f.server("a", &["a.example.com"], 0);
        let rt = Runtime::build(f.model(yaml).unwrap(), 1).unwrap();
        assert_eq!(serial(&rt, "a"), old);
        (rt, old)
    }

    /// Rotates `a` to what `rotate` writes; the reload must refuse it with
    /// `want` in the reason and keep serving `old`.
    fn refused(f: &Fixture, yaml: &str, rotate: impl FnOnce(&Fixture), want: &str) {
        let (rt, old) = serving_a(f, yaml);
        rotate(f);
        let (next, refusals) = Runtime::rebuild(f.model(yaml).unwrap(), &rt, 2).unwrap();
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].credential, "a");
        assert!(refusals[0].reason.contains(want), "{refusals:?}");
        assert_eq!(serial(&next, "a"), old, "the last good version serves");
        assert_eq!(
            last_error(&next, "a").as_deref(),
            Some(&*refusals[0].reason)
        );
    }

    #[test]
    fn a_certificate_not_naming_a_served_host_is_refused_and_the_last_good_kept() {
        let f = Fixture::new();
        let yaml = gateway(&[("a.example.com", "SIMPLE", "a")]);
        refused(
            &f,
            &yaml,
            |f| drop(f.server("a", &["b.example.com"], 0)),
            "does not cover host 'a.example.com' (its names: DNS:b.example.com)",
        );
        // Wildcard and catch-all server hosts ask nothing of the names.
        let f = Fixture::new();
        f.server("a", &["b.example.com"], 0);
        let yaml = gateway(&[
            ("\"*.example.com\"", "SIMPLE", "a"),
            ("\"*\"", "SIMPLE", "a"),
        ]);
        assert!(Runtime::build(f.model(&yaml).unwrap(), 1).is_ok());
    }

    #[test]
    fn a_certificate_not_valid_yet_is_refused_unless_allowed() {
        let f = Fixture::new();
        let yaml = gateway(&[("a.example.com", "SIMPLE", "a")]);
        refused(
            &f,
            &yaml,
            |f| drop(f.server("a", &["a.example.com"], 1)),
            "certificate is not valid before",
        );

        let f = Fixture::new();
        let allow = format!("{}---\n{yaml}", Fixture::ALLOW_EXPIRED);
        let (rt, _) = serving_a(&f, &allow);
        let new = f.server("a", &["a.example.com"], 1);
        let (next, refusals) = Runtime::rebuild(f.model(&allow).unwrap(), &rt, 2).unwrap();
        assert!(refusals.is_empty(), "{refusals:?}");
        assert_eq!(serial(&next, "a"), new);
    }

    #[test]
    fn at_start_the_same_checks_are_errors_naming_document_and_field() {
        let f = Fixture::new();
        let yaml = gateway(&[
            ("x.example.com", "SIMPLE", "a"),
            ("a.example.com", "SIMPLE", "a"),
        ]);
        f.server("a", &["a.example.com"], 0);
        let e = Runtime::build(f.model(&yaml).unwrap(), 1).unwrap_err();
        let want = format!(
            "test.yaml: Gateway/gw: spec.servers[0].hosts[0]: certificate {} \
             does not cover host 'x.example.com'",
            f.cert_path("a").display()
        );
        assert!(e.to_string().starts_with(&want), "{e}");
        f.server("a", &["a.example.com", "x.example.com"], 1);
        let e = Runtime::build(f.model(&yaml).unwrap(), 1).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "test.yaml: Gateway/gw: spec.servers[0].tls.credentialName: \
                 certificate is not valid before"
            ),
            "{e}"
        );
    }

    /// Adding a host the unchanged certificate does not name is the
    /// configuration's mistake: the reload is refused as a whole.
    #[test]
    fn a_new_host_the_kept_certificate_does_not_name_is_a_configuration_error() {
        let f = Fixture::new();
        let (rt, _) = serving_a(&f, &gateway(&[("a.example.com", "SIMPLE", "a")]));
        let more = gateway(&[
            ("a.example.com", "SIMPLE", "a"),
            ("c.example.com", "SIMPLE", "a"),
        ]);
        let e = Runtime::rebuild(f.model(&more).unwrap(), &rt, 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("spec.servers[1].hosts[0]: certificate"),
            "{e}"
        );
    }

    /// Kubelet's Secret volumes for `a` and `b`; in one reload `a`'s
    /// `..data` is broken (by `break_a`) while `b` is validly rotated.
    fn broken_volume_refuses_only_its_credential(break_a: impl FnOnce(&Fixture), want: &str) {
        let f = Fixture::new();
        let yaml = gateway(&[
            ("a.example.com", "SIMPLE", "a"),
            ("b.example.com", "SIMPLE", "b"),
        ]);
        let a_old = f.volume("a", "..2026_01_01", &["a.example.com"]);
        let b_old = f.volume("b", "..2026_01_01", &["b.example.com"]);
        let rt = Runtime::build(f.model(&yaml).unwrap(), 1).unwrap();
        break_a(&f);
        let b_new = f.volume("b", "..2026_02_02", &["b.example.com"]);
        assert_ne!(b_old, b_new);
        let (next, refusals) = Runtime::rebuild(f.model(&yaml).unwrap(), &rt, 2).unwrap();
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert_eq!(refusals[0].credential, "a");
        assert!(refusals[0].reason.contains(want), "{refusals:?}");
        assert_eq!(serial(&next, "a"), a_old);
        assert!(last_error(&next, "a").is_some());
        assert_eq!(serial(&next, "b"), b_new);
        assert_eq!(last_error(&next, "b"), None);
    }

    #[test]
    fn a_secret_volume_swapped_to_a_missing_folder_refuses_only_its_credential() {
        broken_volume_refuses_only_its_credential(
            |f| f.swap_data("a", "..2026_02_02"),
            "dangling symlink",
        );
    }

    #[test]
    fn a_secret_volume_whose_links_loop_refuses_only_its_credential() {
        broken_volume_refuses_only_its_credential(|f| f.swap_data("a", "..data"), "symbolic links");
        broken_volume_refuses_only_its_credential(
            |f| f.loop_file("a", "tls.crt"),
            "symbolic links",
        );
    }
}

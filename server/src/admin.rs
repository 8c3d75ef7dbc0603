//! The plain-HTTP admin port: readiness, metrics, configuration and
//! certificate dumps.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;

use crate::metrics::metrics;
use crate::runtime::SharedRuntime;
use crate::watch::Reloader;

/// Ready once every data-plane listener accepts connections: the
/// listeners are bound before the server starts, and their accept loops
/// say so when they run (`listen::Front`). Nothing connects to find out,
/// so no probe shows up as a handshake failure.
#[derive(Default)]
pub struct Readiness {
    ready: AtomicBool,
    /// Shutting down: the listeners no longer accept.
    draining: AtomicBool,
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Readiness::default())
    }

    /// Every listener's accept loop runs.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Shutdown began: readiness answers 503 from now on, so that nothing
    /// (a load balancer's own health check) sends a new connection here
    /// while in-flight requests finish.
    pub fn mark_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    fn check(&self) -> Result<(), &'static [u8]> {
        if self.draining.load(Ordering::Acquire) {
            Err(b"draining\n")
        } else if self.ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(b"not ready\n")
        }
    }
}

pub struct Admin {
    rt: SharedRuntime,
    readiness: Arc<Readiness>,
    reloader: Option<Arc<Reloader>>,
}

impl Admin {
    pub fn new(
        rt: SharedRuntime,
        readiness: Arc<Readiness>,
        reloader: Option<Arc<Reloader>>,
    ) -> Self {
        Admin {
            rt,
            readiness,
            reloader,
        }
    }

    async fn route(
        &self,
        method: &http::Method,
        path: &str,
        caller: Caller<'_>,
    ) -> (StatusCode, &'static str, Vec<u8>) {
        const TEXT: &str = "text/plain; charset=utf-8";
        const JSON: &str = "application/json";
        match (method.as_str(), path) {
            ("GET", "/healthz/ready") => match self.readiness.check() {
                Ok(()) => (StatusCode::OK, TEXT, b"ready\n".to_vec()),
                Err(why) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, why.to_vec()),
            },
            ("GET", "/healthz/live") => (StatusCode::OK, TEXT, b"live\n".to_vec()),
            ("GET", "/metrics") => {
                crate::watch::refresh_expiring(&self.rt.load());
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    metrics().encode(),
                )
            }
            ("GET", "/config_dump") => {
                let rt = self.rt.load();
                #[derive(Serialize)]
                struct Dump<'a> {
                    generation: u64,
                    model: &'a crate::config::Model,
                    /// Destination -> endpoints outlier detection has out now.
                    ejected: std::collections::BTreeMap<&'a str, Vec<String>>,
                }
                let ejected = rt
                    .routes
                    .destinations()
                    .iter()
                    .map(|d| (&*d.name, d.ejected()))
                    .filter(|(_, out)| !out.is_empty())
                    .map(|(name, out)| (name, out.iter().map(ToString::to_string).collect()))
                    .collect();
                let dump = Dump {
                    generation: rt.generation,
                    model: &rt.model,
                    ejected,
                };
                (StatusCode::OK, JSON, to_json(&dump))
            }
            ("GET", "/certs") => {
                let rt = self.rt.load();
                (StatusCode::OK, JSON, to_json(&rt.cert_views()))
            }
            ("POST", "/drain") => {
                if let Some(refused) = self.refuse_post(caller, path) {
                    return refused;
                }
                // Still accepting: only what chooses by readiness (the
                // kubelet, a load balancer's health check) stops sending.
                self.readiness.mark_draining();
                tracing::info!("draining: readiness answers 503; still serving until SIGTERM");
                (StatusCode::OK, TEXT, b"draining\n".to_vec())
            }
            ("POST", "/reload") => {
                if let Some(refused) = self.refuse_post(caller, path) {
                    return refused;
                }
                let Some(reloader) = self.reloader.clone() else {
                    return (StatusCode::NOT_FOUND, TEXT, b"reload disabled\n".to_vec());
                };
                // Reading and parsing files blocks: keep it off the admin's
                // async workers.
                match tokio::task::spawn_blocking(move || reloader.reload("admin")).await {
                    Ok(outcome) => {
                        let status = if outcome.result == "error" {
                            StatusCode::BAD_REQUEST
                        } else {
                            StatusCode::OK
                        };
                        (status, JSON, to_json(&outcome))
                    }
                    Err(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        TEXT,
                        b"reload failed\n".to_vec(),
                    ),
                }
            }
            (
                _,
                "/healthz/ready" | "/healthz/live" | "/metrics" | "/config_dump" | "/certs"
                | "/reload" | "/drain",
            ) => (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                b"method not allowed\n".to_vec(),
            ),
            _ => (StatusCode::NOT_FOUND, TEXT, b"not found\n".to_vec()),
        }
    }
}

/// Who asks the admin port for something.
#[derive(Debug, Clone, Copy)]
struct Caller<'a> {
    peer: Option<IpAddr>,
    /// The `Authorization: Bearer` token, if any.
    bearer: Option<&'a str>,
}

/// `POST /reload` changes what the gateway serves: from loopback anyone on
/// the machine may (as with the files themselves); from elsewhere only
/// with the token of `spec.adminTokenFile`, read at each request so a
/// rotated token applies at once.
impl Admin {
    /// A POST (`/reload`, `/drain`) changes what the gateway does: refused,
    /// counted and logged unless `may_post` allows the caller.
    fn refuse_post(
        &self,
        caller: Caller<'_>,
        path: &str,
    ) -> Option<(StatusCode, &'static str, Vec<u8>)> {
        let token_file = self.rt.load().model.runtime.admin_token_file.clone();
        let why = may_post(caller, token_file.as_deref()).err()?;
        metrics()
            .http_refused
            .with_label_values(&["admin_unauthorized"])
            .inc();
        tracing::warn!(peer = ?caller.peer, why, path, "admin POST refused");
        Some((
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            format!("{why}\n").into_bytes(),
        ))
    }
}

fn may_post(caller: Caller<'_>, token_file: Option<&std::path::Path>) -> Result<(), String> {
    if caller.peer.is_some_and(|ip| ip.is_loopback()) {
        return Ok(());
    }
    let Some(file) = token_file else {
        return Err(
            "a POST (/reload, /drain) from outside loopback needs a token: \
                    set GatewayRuntime spec.adminTokenFile"
                .into(),
        );
    };
    let token = std::fs::read_to_string(file)
        .map_err(|e| format!("admin token file {}: {e}", file.display()))?;
    let token = token.trim();
    let given = caller.bearer.unwrap_or("").trim();
    let same = !token.is_empty()
        && token.len() == given.len()
        && openssl::memcmp::eq(token.as_bytes(), given.as_bytes());
    if same {
        Ok(())
    } else {
        Err("POST /reload needs Authorization: Bearer <the token of spec.adminTokenFile>".into())
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v)
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes());
    out.push(b'\n');
    out
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        let bearer = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let caller = Caller { peer, bearer };
        let (status, content_type, body) = self.route(&req.method, req.uri.path(), caller).await;
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn reload_needs_loopback_or_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let local: Option<IpAddr> = Some(Ipv4Addr::LOCALHOST.into());
        let remote: Option<IpAddr> = Some(Ipv4Addr::new(10, 0, 0, 7).into());
        let call = |peer, bearer| Caller { peer, bearer };
        let missing = dir.path().join("missing");
        let cases = [
            (call(local, None), None, true),
            (call(Some(Ipv6Addr::LOCALHOST.into()), None), None, true),
            (call(remote, None), None, false),
            (call(remote, Some("s3cret")), None, false),
            (call(remote, Some("s3cret")), Some(file.as_path()), true),
            (call(remote, Some("s3cre")), Some(file.as_path()), false),
            (call(remote, None), Some(file.as_path()), false),
            (call(None, Some("s3cret")), Some(file.as_path()), true),
            (call(remote, Some("s3cret")), Some(missing.as_path()), false),
        ];
        for (i, (caller, file, ok)) in cases.into_iter().enumerate() {
            assert_eq!(may_post(caller, file).is_ok(), ok, "case {i}: {caller:?}");
        }
        std::fs::write(&file, "\n").unwrap();
        assert!(may_post(call(remote, Some("")), Some(file.as_path())).is_err());
    }
}

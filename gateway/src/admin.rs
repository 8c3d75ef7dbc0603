//! The plain-HTTP admin port: readiness, metrics, configuration and
//! certificate dumps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;

use crate::metrics::metrics;
use crate::runtime::SharedRuntime;
use crate::watch::Reloader;

/// Ready once every data-plane listener accepts connections. Pingora binds
/// listeners inside its own start-up, so we look rather than guess; after
/// the first success the answer is cached.
pub struct Readiness {
    ready: AtomicBool,
    listeners: Vec<SocketAddr>,
}

impl Readiness {
    pub fn new(listeners: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Readiness {
            ready: AtomicBool::new(false),
            listeners,
        })
    }

    async fn check(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        for addr in &self.listeners {
            let target = probe_target(*addr);
            let connected = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(target),
            )
            .await;
            if !matches!(connected, Ok(Ok(_))) {
                return false;
            }
        }
        self.ready.store(true, Ordering::Relaxed);
        true
    }
}

/// A wildcard bind is probed on loopback of the same family.
fn probe_target(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
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
    ) -> (StatusCode, &'static str, Vec<u8>) {
        const TEXT: &str = "text/plain; charset=utf-8";
        const JSON: &str = "application/json";
        match (method.as_str(), path) {
            ("GET", "/healthz/ready") => {
                if self.readiness.check().await {
                    (StatusCode::OK, TEXT, b"ready\n".to_vec())
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        TEXT,
                        b"not ready\n".to_vec(),
                    )
                }
            }
            ("GET", "/healthz/live") => (StatusCode::OK, TEXT, b"live\n".to_vec()),
            ("GET", "/metrics") => (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics().encode(),
            ),
            ("GET", "/config_dump") => {
                let rt = self.rt.load();
                #[derive(Serialize)]
                struct Dump<'a> {
                    generation: u64,
                    model: &'a crate::config::Model,
                }
                let dump = Dump {
                    generation: rt.generation,
                    model: &rt.model,
                };
                (StatusCode::OK, JSON, to_json(&dump))
            }
            ("GET", "/certs") => {
                let rt = self.rt.load();
                (StatusCode::OK, JSON, to_json(&rt.cert_views()))
            }
            ("POST", "/reload") => {
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
                | "/reload",
            ) => (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                b"method not allowed\n".to_vec(),
            ),
            _ => (StatusCode::NOT_FOUND, TEXT, b"not found\n".to_vec()),
        }
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
        let req = session.req_header();
        let (status, content_type, body) = self.route(&req.method, req.uri.path()).await;
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

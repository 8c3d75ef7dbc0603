//! tlsgate: an ingress/egress TLS gateway that reads Istio YAML, built on Pingora.
//!
//! Data flows one way: files -> [`config::Model`] + [`credentials`] ->
//! [`runtime::Runtime`] (immutable, held in one `ArcSwap`) -> read at each
//! handshake and pinned by each request.

#![forbid(unsafe_code)]

pub mod admin;
pub mod certgen;
pub mod config;
pub mod credentials;
pub mod decide;
pub mod dns;
pub mod embedded;
pub mod listen;
pub mod logrl;
pub mod metrics;
pub mod names;
pub mod origin;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod tls;
pub mod watch;

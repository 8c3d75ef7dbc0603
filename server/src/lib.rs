//! tlsgate's server: the listeners (accept, limits, the TLS handshake with
//! the OpenSSL callbacks that apply each host's policy), the two engines
//! that execute a request's decision (the direct path and Pingora's proxy),
//! the admin port, and the reloads that publish each new runtime.
//!
//! Per connection: `listen` accepts and handshakes (`tls`), then
//! `proxy::Direct` reads each request (HTTP/1.1 through one gate, HTTP/2
//! through one connection loop), asks `decide` (core) what to do, and
//! executes it itself or hands it, with its decision, to Pingora's proxy.

#![forbid(unsafe_code)]

pub use tlsgate_config as config;
pub use tlsgate_core::{authz, credentials, decide, l4, names, origin, route, runtime};

pub mod admin;
pub mod crl_fetch;
pub mod dns;
pub mod embedded;
pub mod listen;
pub mod logrl;
pub mod metrics;
pub mod proxy;
pub mod tls;
pub mod upgrade;
pub mod watch;

//! tlsgate's core: what the gateway serves and decides, with no sockets.
//!
//! Data flows one way: the validated [`config::Model`] and the
//! [`credentials`] it names become a [`runtime::Runtime`] (routing tables,
//! server TLS policy, upstream TLS, all built and checked at once), held in
//! one `ArcSwap` by the server; each request is then decided by
//! [`decide::decide`], a pure function of the runtime, its connection and
//! the request, which the server's engines only execute.

#![forbid(unsafe_code)]

pub use tlsgate_config as config;
pub use tlsgate_config::names;

#[cfg(test)]
use tlsgate_certs as certgen;

pub mod authz;
pub mod credentials;
pub mod decide;
pub mod l4;
pub mod origin;
pub mod revocation;
pub mod route;
pub mod runtime;
pub mod tls;

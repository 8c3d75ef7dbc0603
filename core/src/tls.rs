//! Server-side TLS as the core knows it: the policy each SNI gets on each
//! listener ([`TlsPolicy`], built with the runtime) and the facts a
//! finished handshake leaves for its connection's requests ([`ConnInfo`]).
//! The OpenSSL callbacks that apply the policy are the server's.

mod conn;
pub mod policy;

pub use conn::{ConnInfo, PeerCerts};
pub use policy::{ListenerTls, ServerPolicy, SniMap, TlsPolicy};

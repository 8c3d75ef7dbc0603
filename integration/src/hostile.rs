//! The attacker's toolkit: what the hardening tests (issue 10) do to a
//! running gateway, and what they measure while and after they do it.
//!
//! - [`proc`]: descriptors, CLOSE_WAIT sockets and RSS of a process;
//! - [`client_hello`]: a real OpenSSL ClientHello, to send whole, cut or trickled;
//! - [`tls`]: TLS connections to the gateway (example CA, SNI, ALPN, client certificates);
//! - [`raw`]: raw TCP and TLS peers: trickled bytes, raw HTTP/1.1 heads, "was I closed?";
//! - [`h2`] and [`hpack`]: a raw HTTP/2 client that can misbehave frame by frame;
//! - [`net`]: a non-loopback address of this machine;
//! - [`good`]: well-behaved clients in the background, with a report;
//! - [`harden`]: seed 000 started with short deadlines and limits, and the
//!   checks every hardening case ends with.
//!
//! Everything talks to 127.0.0.1 and every wait is bounded.

pub mod client_hello;
pub mod good;
pub mod h2;
pub mod harden;
pub mod hpack;
pub mod net;
pub mod proc;
pub mod raw;
pub mod tls;

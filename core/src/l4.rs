//! The first bytes of a connection, read before anything is decided
//! (issue 13's "look before deciding"): a PROXY protocol header, and the
//! TLS ClientHello's server name. Both parsers are sans-IO and bounded:
//! they look at the bytes buffered so far and answer "need more",
//! "done, this long" or "invalid, because", never consuming, allocating in
//! proportion to input, or waiting; the listener decides how long to wait
//! and how much to buffer.

pub mod client_hello;
pub mod proxy_protocol;

/// What a parser made of the bytes at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not enough bytes yet; at least this many more are needed (1 when
    /// unknown).
    Incomplete(usize),
    /// Done: the value and how many bytes it took.
    Done(T, usize),
    /// Not valid: the reason, as a metric label.
    Invalid(&'static str),
}

//! Reads what a listener must see before deciding (issue 13's "look
//! before deciding"): a PROXY protocol header, then the first byte or the
//! whole ClientHello. The bytes are read, not peeked (a peek cannot wait
//! for *more* bytes of a trickled hello without spinning), kept in a
//! buffer bounded by what the parsers accept, and replayed to whatever
//! serves the connection next (`Sock::with_prefix`). Every wait is under
//! one deadline from accept; every refusal has a reason label.

use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::l4::client_hello::{self, ClientHello, MAX_HELLO};
use crate::l4::proxy_protocol::{self, Header, V2_MAX};
use crate::l4::Parsed;

/// A hello in many small records carries 5 bytes of record header per
/// fragment: room for that, and no more.
const HELLO_BUFFER: usize = MAX_HELLO + 4096;
const READ_CHUNK: usize = 4096;

/// The bytes read so far and not yet consumed.
pub struct Opening {
    pub buf: Vec<u8>,
    deadline: Instant,
}

/// The TLS opening as read.
pub enum First {
    Plain,
    Tls(Option<ClientHello>),
}

impl Opening {
    pub fn new(deadline: Instant) -> Opening {
        Opening {
            buf: Vec::new(),
            deadline,
        }
    }

    /// Reads until the buffer holds at least `want` bytes (at least one
    /// more), never past `cap`. Reading only into spare capacity, and only
    /// parsing again once a parser's `Incomplete(n)` can be met, keeps a
    /// hello trickled one byte per segment linear, not quadratic.
    async fn more(
        &mut self,
        tcp: &mut TcpStream,
        want: usize,
        cap: usize,
    ) -> Result<(), &'static str> {
        use bytes::BufMut;
        let want = want.clamp(self.buf.len() + 1, cap.max(self.buf.len() + 1));
        while self.buf.len() < want {
            if self.buf.len() >= cap {
                return Err("first_bytes_too_long");
            }
            let room = (cap - self.buf.len()).min(READ_CHUNK);
            self.buf.reserve(room);
            let mut limited = (&mut self.buf).limit(room);
            let read = tokio::time::timeout_at(self.deadline.into(), tcp.read_buf(&mut limited));
            match read.await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Err("client_closed"),
                Err(_) => return Err("first_bytes_timeout"),
            }
        }
        Ok(())
    }

    /// A PROXY protocol header at the start, consumed; `None` when the
    /// connection starts with something else and `optional`.
    pub async fn proxy_header(
        &mut self,
        tcp: &mut TcpStream,
        optional: bool,
    ) -> Result<Option<Header>, &'static str> {
        loop {
            match proxy_protocol::parse(&self.buf) {
                Parsed::Done(h, n) => {
                    self.buf.drain(..n);
                    return Ok(Some(h));
                }
                Parsed::Invalid("not_proxy_protocol") if optional => return Ok(None),
                Parsed::Invalid(why) => {
                    tracing::debug!(why, "PROXY protocol header refused");
                    return Err(if why == "not_proxy_protocol" {
                        "proxy_protocol_missing"
                    } else {
                        "proxy_protocol_invalid"
                    });
                }
                Parsed::Incomplete(n) => {
                    let want = self.buf.len() + n;
                    self.more(tcp, want, V2_MAX).await.map_err(|e| match e {
                        "first_bytes_too_long" => "proxy_protocol_invalid",
                        other => other,
                    })?
                }
            }
        }
    }

    /// The first byte: a TLS handshake record or not.
    pub async fn first_byte(&mut self, tcp: &mut TcpStream) -> Result<First, &'static str> {
        if self.buf.is_empty() {
            self.more(tcp, 1, HELLO_BUFFER).await?;
        }
        Ok(if self.buf[0] == 0x16 {
            First::Tls(None)
        } else {
            First::Plain
        })
    }

    /// The whole ClientHello when the connection starts with TLS.
    pub async fn client_hello(&mut self, tcp: &mut TcpStream) -> Result<First, &'static str> {
        if let First::Plain = self.first_byte(tcp).await? {
            return Ok(First::Plain);
        }
        loop {
            match client_hello::parse(&self.buf) {
                Parsed::Done(h, _) => return Ok(First::Tls(Some(h))),
                Parsed::Invalid(why) => {
                    tracing::debug!(why, "ClientHello refused");
                    return Err(if why == "hello_too_long" {
                        "client_hello_too_long"
                    } else {
                        "client_hello_invalid"
                    });
                }
                Parsed::Incomplete(n) => {
                    let want = self.buf.len() + n;
                    self.more(tcp, want, HELLO_BUFFER)
                        .await
                        .map_err(|e| match e {
                            "first_bytes_too_long" => "client_hello_too_long",
                            other => other,
                        })?
                }
            }
        }
    }
}

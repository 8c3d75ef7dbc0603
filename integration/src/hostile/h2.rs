//! A raw HTTP/2 client over TLS (ALPN `h2`), blocking, one frame at a
//! time: it sends what a test asks for, valid or not, and reports what the
//! server sends back as [`Event`]s.
//!
//! It announces `HEADER_TABLE_SIZE = 0` (so [`hpack::status`] can read
//! every response status), no push, and large receive windows (so
//! responses never wait for a WINDOW_UPDATE of ours); it acknowledges the
//! server's SETTINGS by itself and remembers its stream limit.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use openssl::ssl::SslStream;

use super::hpack;
use super::tls::{self, TlsOpts};

mod frame;

use frame::{be32, header_block};
pub use frame::{code, code_name, flag, ty, Event};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 connection.
pub struct H2 {
    s: SslStream<TcpStream>,
    buf: Vec<u8>,
    next_id: u32,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, once known.
    pub max_streams: Option<u32>,
    /// The first GOAWAY received.
    pub goaway: Option<(u32, u32)>,
    /// The connection is gone (EOF or reset).
    pub closed: bool,
    preface_sent: bool,
}

impl H2 {
    /// TLS with ALPN `h2` to `sni` on 127.0.0.1:`port`; nothing sent yet.
    pub fn connect(port: u16, sni: &str, client: Option<&str>) -> Result<H2, String> {
        let opts = TlsOpts {
            client,
            alpn: &["h2"],
            ..TlsOpts::default()
        };
        let s = tls::connect(port, sni, &opts, Duration::from_secs(5))?;
        let alpn = s.ssl().selected_alpn_protocol().map(<[u8]>::to_vec);
        if alpn.as_deref() != Some(b"h2") {
            return Err(format!("ALPN chose {alpn:?}, not h2"));
        }
        Ok(H2 {
            s,
            buf: Vec::new(),
            next_id: 1,
            max_streams: None,
            goaway: None,
            closed: false,
            preface_sent: false,
        })
    }

    /// [`H2::connect`], the preface and SETTINGS, and the server's SETTINGS.
    pub fn open(port: u16, sni: &str) -> Result<H2, String> {
        let mut c = H2::connect(port, sni, None)?;
        c.send_preface().map_err(|e| format!("preface: {e}"))?;
        c.wait(Duration::from_secs(3), |e| {
            matches!(e, Event::Settings { ack: false })
        })
        .ok_or("no SETTINGS from the server within 3 s")?;
        Ok(c)
    }

    /// The preface, our SETTINGS, and a connection window of 16 MiB more.
    pub fn send_preface(&mut self) -> std::io::Result<()> {
        self.s.write_all(PREFACE)?;
        self.preface_sent = true;
        let mut settings = Vec::new();
        for (id, value) in [(0x1u16, 0u32), (0x2, 0), (0x4, 1 << 20)] {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        self.frame(ty::SETTINGS, 0, 0, &settings)?;
        self.window_update(0, 16 << 20)
    }

    /// The next client stream id (1, 3, 5, ...).
    pub fn next_stream(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        id
    }

    /// Any frame, as given.
    pub fn frame(&mut self, ty: u8, flags: u8, stream: u32, payload: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).expect("payload fits a frame");
        let mut f = Vec::with_capacity(9 + payload.len());
        f.extend_from_slice(&len.to_be_bytes()[1..]);
        f.push(ty);
        f.push(flags);
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        self.s.write_all(&f)
    }

    pub fn headers(
        &mut self,
        stream: u32,
        block: &[u8],
        end_stream: bool,
        end_headers: bool,
    ) -> std::io::Result<()> {
        let mut flags = 0;
        if end_stream {
            flags |= flag::END_STREAM;
        }
        if end_headers {
            flags |= flag::END_HEADERS;
        }
        self.frame(ty::HEADERS, flags, stream, block)
    }

    pub fn continuation(
        &mut self,
        stream: u32,
        block: &[u8],
        end_headers: bool,
    ) -> std::io::Result<()> {
        let flags = if end_headers { flag::END_HEADERS } else { 0 };
        self.frame(ty::CONTINUATION, flags, stream, block)
    }

    pub fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> std::io::Result<()> {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        self.frame(ty::DATA, flags, stream, data)
    }

    pub fn rst_stream(&mut self, stream: u32, code: u32) -> std::io::Result<()> {
        self.frame(ty::RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// WINDOW_UPDATE; an `increment` of 0 is a protocol error the server
    /// must answer with RST_STREAM (on a stream) or GOAWAY (on stream 0).
    pub fn window_update(&mut self, stream: u32, increment: u32) -> std::io::Result<()> {
        self.frame(ty::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
    }

    pub fn ping(&mut self, payload: [u8; 8]) -> std::io::Result<()> {
        self.frame(ty::PING, 0, 0, &payload)
    }

    /// A whole request on a new stream: HEADERS (ending the stream when
    /// there is no body), then the body in one DATA frame that ends it.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        authority: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<u32> {
        let id = self.next_stream();
        let len = body.map(|b| b.len().to_string());
        let extra: Vec<(&str, &str)> = len.iter().map(|l| ("content-length", l.as_str())).collect();
        let block = hpack::request(method, path, authority, &extra);
        self.headers(id, &block, body.is_none(), true)?;
        if let Some(b) = body {
            self.data(id, b, true)?;
        }
        Ok(id)
    }

    /// The next thing the server sends, waiting at most `timeout`.
    pub fn read_event(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.parse_frame() {
                return e;
            }
            if self.closed {
                return Event::Closed {
                    why: "closed before".into(),
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Event::Timeout;
            }
            let _ = self.s.get_ref().set_read_timeout(Some(left));
            let mut chunk = [0u8; 32 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return Event::Closed { why: "EOF".into() };
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Event::Timeout;
                }
                Err(e) => {
                    self.closed = true;
                    return Event::Closed { why: e.to_string() };
                }
            }
        }
    }

    /// Events until `pred` holds for one (returned), the connection ends
    /// (the end is returned), or `timeout` passes (`None`).
    pub fn wait(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.read_event(left);
            if e == Event::Timeout {
                return None;
            }
            if pred(&e) || e.is_end() {
                return Some(e);
            }
        }
    }

    /// Every event within `timeout` (stops early at the connection's end).
    pub fn drain(&mut self, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let e = self.read_event(deadline.saturating_duration_since(Instant::now()));
            match e {
                Event::Timeout => return out,
                Event::Closed { .. } => {
                    out.push(e);
                    return out;
                }
                _ => out.push(e),
            }
        }
    }

    /// One frame out of the buffer, decoded; answers SETTINGS itself.
    fn parse_frame(&mut self) -> Option<Event> {
        if self.buf.len() < 9 {
            return None;
        }
        let len = usize::from(self.buf[0]) << 16
            | usize::from(self.buf[1]) << 8
            | usize::from(self.buf[2]);
        if self.buf.len() < 9 + len {
            return None;
        }
        let (ty, flags) = (self.buf[3], self.buf[4]);
        let stream = be32(&self.buf[5..9]) & 0x7fff_ffff;
        let payload: Vec<u8> = self.buf[9..9 + len].to_vec();
        self.buf.drain(..9 + len);
        let event = match ty {
            ty::SETTINGS => {
                let ack = flags & flag::ACK != 0;
                if !ack {
                    for p in payload.chunks_exact(6) {
                        if u16::from_be_bytes([p[0], p[1]]) == 0x3 {
                            self.max_streams = Some(be32(&p[2..6]));
                        }
                    }
                    // Ignored if it fails: the next read reports the close.
                    // Before our preface, a SETTINGS ACK would be a
                    // protocol error (a silent client stays silent).
                    if self.preface_sent {
                        let _ = self.frame(ty::SETTINGS, flag::ACK, 0, &[]);
                    }
                }
                Event::Settings { ack }
            }
            ty::GOAWAY if payload.len() >= 8 => {
                let (last_stream, code) =
                    (be32(&payload[0..4]) & 0x7fff_ffff, be32(&payload[4..8]));
                self.goaway.get_or_insert((last_stream, code));
                Event::GoAway { last_stream, code }
            }
            ty::RST_STREAM if payload.len() >= 4 => Event::Reset {
                stream,
                code: be32(&payload[..4]),
            },
            ty::HEADERS => Event::Headers {
                stream,
                status: hpack::status(header_block(flags, &payload)),
                end_stream: flags & flag::END_STREAM != 0,
            },
            ty::DATA => Event::Data {
                stream,
                len,
                end_stream: flags & flag::END_STREAM != 0,
            },
            ty::WINDOW_UPDATE if payload.len() >= 4 => Event::WindowUpdate {
                stream,
                increment: be32(&payload[..4]) & 0x7fff_ffff,
            },
            ty::PING => Event::Ping {
                ack: flags & flag::ACK != 0,
            },
            ty => Event::Other { ty, stream },
        };
        Some(event)
    }
}

//! HTTP/2 frames as the raw client sees them: types, flags, error codes,
//! and what the server sent, decoded into an [`Event`].

/// Frame types.
pub mod ty {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Error codes (RFC 9113 section 7).
pub mod code {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// The name of an error code, as RFC 9113 writes it.
pub fn code_name(c: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(c as usize).copied().unwrap_or("UNKNOWN")
}

/// What the server sent (or did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Settings {
        ack: bool,
    },
    GoAway {
        last_stream: u32,
        code: u32,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    /// A response head; `status` when the block said it plainly.
    Headers {
        stream: u32,
        status: Option<u16>,
        end_stream: bool,
    },
    Data {
        stream: u32,
        len: usize,
        end_stream: bool,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Ping {
        ack: bool,
    },
    Other {
        ty: u8,
        stream: u32,
    },
    /// EOF or a reset of the TCP connection.
    Closed {
        why: String,
    },
    /// Nothing within the time given.
    Timeout,
}

impl Event {
    pub fn is_end(&self) -> bool {
        matches!(self, Event::GoAway { .. } | Event::Closed { .. })
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::GoAway { last_stream, code } => {
                write!(f, "GOAWAY({}, last stream {last_stream})", code_name(*code))
            }
            Event::Reset { stream, code } => {
                write!(f, "RST_STREAM({}) on {stream}", code_name(*code))
            }
            other => write!(f, "{other:?}"),
        }
    }
}

pub(super) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The header block fragment of a HEADERS payload (padding and priority removed).
pub(super) fn header_block(flags: u8, payload: &[u8]) -> &[u8] {
    let mut p = payload;
    let mut pad = 0;
    if flags & flag::PADDED != 0 && !p.is_empty() {
        pad = usize::from(p[0]);
        p = &p[1..];
    }
    if flags & flag::PRIORITY != 0 && p.len() >= 5 {
        p = &p[5..];
    }
    &p[..p.len().saturating_sub(pad)]
}

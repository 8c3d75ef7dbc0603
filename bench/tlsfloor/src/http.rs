//! Just enough HTTP/1.1 for loadgen: read a request head, answer it with a
//! canned 1 KiB body, keep the connection for the next one.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const BODY_LEN: usize = 1024;
/// The same size tlsgate reads with, so both variants carry what tlsgate
/// carries per connection besides the TLS library.
const READ_BUF: usize = 1024;
/// A head longer than this is not loadgen's: the connection is closed.
const MAX_HEAD: usize = 8 * 1024;

fn response() -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {BODY_LEN}\r\n\r\n"
    )
    .into_bytes();
    r.resize(r.len() + BODY_LEN, b'x');
    r
}

/// Serves requests until the client closes, sends something that is not a
/// bodiless request head, or an I/O error; a clean end sends close_notify.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut tls: S) {
    let response = response();
    let mut buf = Vec::with_capacity(READ_BUF);
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() >= MAX_HEAD {
                return;
            }
            buf.reserve(READ_BUF);
            match tls.read_buf(&mut buf).await {
                Ok(0) => {
                    let _ = tls.shutdown().await;
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        };
        if has_body(&buf[..head_end]) {
            return;
        }
        buf.drain(..head_end);
        if tls.write_all(&response).await.is_err() || tls.flush().await.is_err() {
            return;
        }
    }
}

/// A request with a body would need framing this server does not do.
fn has_body(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').any(|line| {
        let line = line.to_ascii_lowercase();
        match line.strip_prefix(b"content-length:") {
            Some(value) => value.trim_ascii() != b"0",
            None => line.starts_with(b"transfer-encoding:"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_with_a_body_are_told_apart() {
        assert!(!has_body(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"));
        assert!(!has_body(b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"));
        assert!(has_body(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
        assert!(has_body(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
    }

    #[tokio::test]
    async fn answers_each_request_of_a_connection_then_closes_cleanly() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(serve(server));
        let mut got = vec![0u8; response().len()];
        for _ in 0..2 {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
                .await
                .unwrap();
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, response());
        }
        client.shutdown().await.unwrap();
        task.await.unwrap();
        assert_eq!(client.read(&mut got).await.unwrap(), 0);
    }
}

//! An echo backend: HTTP/1.1 and h2c (prior knowledge) on 127.0.0.1:<free>.
//! It accepts request heads up to 4 MiB and 20,000 header lines (HTTP/2:
//! 16 MiB of header list), far beyond what a gateway should let through.
//!
//! Every request is answered with JSON
//! `{"backend": name, "method", "path", "version", "headers": {..}, "body"}`
//! (a header sent several times is joined with `", "`), status 200, except:
//! - `/delay/<ms>`: waits `ms` (at most 30 s) first;
//! - `/status/<code>`: answers with that status;
//! - `/bytes/<n>`: answers `n` bytes of `x` (at most 64 MiB) instead of JSON.
//!
//! Requests are counted and recorded, and so are those in flight (a
//! request whose connection closes before the answer is no longer in
//! flight: hyper drops its handler). The server stops when dropped.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

/// What the backend received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Names lower case, in arrival order, repeated headers kept apart.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of header `name` joined with `", "`, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let all = self.header_all(name);
        if all.is_empty() {
            None
        } else {
            Some(all.join(", "))
        }
    }
}

struct Shared {
    name: String,
    count: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// One request in flight from its head until its handler ends or is dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared.clone())
    }
}

/// One connection open to the backend.
struct Open(Arc<Shared>);

impl Open {
    fn enter(shared: &Arc<Shared>) -> Open {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        Open(shared.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Backend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Start an echo backend called `name` on 127.0.0.1 with an OS-chosen port.
    pub fn start(name: &str) -> Backend {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind backend on 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("set_nonblocking on backend listener");
        let addr = listener.local_addr().expect("backend local_addr");
        let shared = Arc::new(Shared {
            name: name.to_string(),
            count: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("backend-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("backend runtime");
                rt.block_on(serve(listener, sh, stop_rx));
                rt.shutdown_timeout(Duration::from_millis(500));
            })
            .expect("spawn backend thread");
        Backend {
            shared,
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Requests whose head arrived and whose handler has not ended yet.
    /// Connections open to this backend now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests in flight at once since the start or the last
    /// [`Backend::reset_max_in_flight`].
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Start measuring [`Backend::max_in_flight`] again from the present.
    pub fn reset_max_in_flight(&self) {
        let now = self.in_flight();
        self.shared.max_in_flight.store(now, Ordering::SeqCst);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forget what was received so far: `count` and `requests` start again.
    pub fn clear(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.shared.count.store(0, Ordering::SeqCst);
    }

    /// The last request received, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.requests().pop()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: StdListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("[backend {}] cannot use listener: {e}", shared.name);
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let sh = shared.clone();
                tokio::spawn(async move {
                    let _open = Open::enter(&sh);
                    let svc = hyper::service::service_fn(move |req| handle(req, sh.clone()));
                    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    // Accept what a gateway should have refused, so that the
                    // refusal is seen to be the gateway's.
                    builder.http1().max_buf_size(4 << 20).max_headers(20_000);
                    builder.http2().max_header_list_size(16 << 20);
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _in_flight = InFlight::enter(&shared);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 16 * 1024 * 1024).collect().await {
        Ok(c) => c.to_bytes().to_vec(),
        // The connection went away mid-body (the gateway gave the request
        // up): nobody waits for an answer, so the request is no longer in
        // flight (hyper keeps running a handler whose body failed).
        Err(_) => return Ok(Response::new(Full::new(Bytes::new()))),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let rec = RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        version: format!("{:?}", parts.version),
        headers,
        body,
    };
    shared.count.fetch_add(1, Ordering::SeqCst);
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(rec.clone());

    let mut status = StatusCode::OK;
    let p = parts.uri.path();
    if let Some(n) = p.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        let mut r = Response::new(Full::new(Bytes::from(vec![b'x'; n.min(64 << 20)])));
        r.headers_mut().insert(
            "content-type",
            "application/octet-stream".parse().expect("valid"),
        );
        return Ok(r);
    }
    if let Some(ms) = p.strip_prefix("/delay/") {
        let ms: u64 = ms
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms.min(30_000))).await;
    } else if let Some(code) = p.strip_prefix("/status/") {
        if let Some(s) = code
            .split('/')
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            status = s;
        }
    }

    let mut hdrs = serde_json::Map::new();
    for (n, _) in &rec.headers {
        if !hdrs.contains_key(n) {
            hdrs.insert(n.clone(), rec.header(n).unwrap_or_default().into());
        }
    }
    let json = serde_json::json!({
        "backend": shared.name,
        "method": rec.method,
        "path": rec.path,
        "version": rec.version,
        "headers": hdrs,
        "body": String::from_utf8_lossy(&rec.body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "x-backend",
        hyper::header::HeaderValue::from_str(&shared.name)
            .unwrap_or(hyper::header::HeaderValue::from_static("invalid-name")),
    );
    Ok(resp)
}

//! Command line: clap definitions, then [`Args::plan`] checks them and
//! resolves everything a run needs (address, request target, timings) into a
//! [`Plan`], so the workers never parse anything.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

const HELP: &str = "\
Every connection goes to one address: the --resolve entry matching the URL's
host and port, else the first address DNS gives for the host (resolved once).

Modes (one of):
  --keepalive   closed loop (default): each of --connections connections sends
                a request as soon as the previous response is read.
  --new-conn    one TCP connection and one full TLS handshake per request.
                Session resumption is allowed and counted unless --no-resume.
  --idle        open --connections connections, one request each, then hold
                them open until --duration ends (for memory-per-connection
                measurements); prints a line on stderr once all are up.
  --h2          HTTP/2 (ALPN h2) with --streams concurrent streams per
                connection; default is HTTP/1.1 (ALPN http/1.1).
  --rate R      open loop: R requests per second in total, on a fixed
                schedule. Latency is measured from each request's intended
                send time, so queueing behind a slow response is counted (no
                coordinated omission). Without --rate the loop is closed.

Output: one JSON object on stdout, counting only what started after --warmup:
  requests            responses received (any status)
  ok / non_2xx        responses with a 2xx status / with another status
  errors              requests that got no response (connect, TLS, I/O,
                      protocol, timeout); errors_by_kind breaks them down
  unsent              with --rate: requests due in the measured window that
                      never started (all connections busy until the end);
                      they enter the percentiles with the wait they had
                      reached at the end (a lower bound)
  handshakes_full     TLS handshakes without resumption
  handshakes_resumed  TLS handshakes that resumed a session
  rps                 2xx responses per second over --duration
  p50_ms .. p999_ms   latency percentiles (nearest rank), in milliseconds
  proxy_cpu_s         with --cpu-pid: CPU seconds (user+system) those
                      processes used during the measured window
  rps_per_proxy_cpu_s ok / proxy_cpu_s
  proxy_system_cpu_s  the part of proxy_cpu_s the kernel spent on their
                      behalf (system time; on loopback it includes the
                      receiver's TCP input that their sends run)
  tls                 what the first handshake negotiated: version, cipher
                      suite, key exchange group

Examples:
  loadgen --url https://partner.example.com:8443/ \\
      --resolve partner.example.com:8443:127.0.0.1 --cacert ca.crt \\
      --cert client/tls.crt --key client/tls.key --connections 64 --duration 10s
  loadgen ... --new-conn --no-resume --connections 32
  loadgen ... --h2 --connections 16 --streams 10 --rate 20000";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    version,
    about = "HTTPS load generator: client certificates, HTTP/1.1 and HTTP/2, \
             new handshakes with or without resumption, open-loop rates",
    after_help = HELP
)]
pub struct Args {
    /// Target, http:// or https://host[:port]/path[?query]
    #[arg(long)]
    pub url: String,
    /// Connect to ADDR for HOST:PORT instead of resolving it (as curl's --resolve)
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// PEM bundle of CAs that the server certificate must chain to
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server certificate
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Client certificate chain (PEM), leaf first
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM: PKCS#8, SEC1 or PKCS#1)
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Extra request header, "Name: value" (repeatable)
    #[arg(long, short = 'H', value_name = "HEADER")]
    pub header: Vec<String>,

    /// Closed loop over persistent connections (the default mode)
    #[arg(long, group = "mode")]
    pub keepalive: bool,
    /// A new connection and TLS handshake for every request
    #[arg(long, group = "mode")]
    pub new_conn: bool,
    /// Open the connections, make one request on each, keep them idle
    #[arg(long, group = "mode")]
    pub idle: bool,
    /// Refuse TLS session resumption (every handshake is a full one)
    #[arg(long)]
    pub no_resume: bool,
    /// Speak HTTP/2 (ALPN h2 required)
    #[arg(long)]
    pub h2: bool,
    /// Concurrent streams per HTTP/2 connection
    #[arg(long, default_value_t = 10, value_name = "S")]
    pub streams: u32,
    /// Connections (with --new-conn: concurrent handshakes in flight)
    #[arg(long, short = 'c', default_value_t = 16, value_name = "N")]
    pub connections: u32,
    /// Open loop at R requests per second in total (default: closed loop)
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Measured time (e.g. 10s, 500ms, 2m; a bare number is seconds)
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time before the measurement starts; nothing that starts in it is counted
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Give up on a connection attempt or a request after this long
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Worker threads (default: the CPUs this process may run on)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Report the CPU time of this process (Linux /proc; repeatable)
    #[arg(long, value_name = "PID")]
    pub cpu_pid: Vec<u32>,
    /// TLS versions: 1.2, 1.3 or any
    #[arg(long, default_value = "any", value_parser = ["1.2", "1.3", "any"])]
    pub tls_version: String,
    /// Key exchange groups offered, in order (x25519, p256, p384,
    /// x25519mlkem768). The first one gets a key share. TLS 1.2 servers with
    /// an ECDSA P-256 certificate need p256 in the list.
    #[arg(long, default_value = "x25519,p256", value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Cipher suites offered, in order (aes128, aes256, chacha20; TLS 1.2 and
    /// 1.3 variants of each)
    #[arg(long, default_value = "aes128", value_delimiter = ',')]
    pub ciphers: Vec<String>,
}

/// Where and what to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// Host as written in the URL, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Path and query, at least "/".
    pub path: String,
    /// Host header / :authority: host, plus ":port" when not the default.
    pub authority: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    KeepAlive,
    NewConn,
    Idle,
}

/// A checked and resolved run description.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub addr: SocketAddr,
    pub mode: Mode,
    pub h2: bool,
    pub streams: u32,
    pub connections: u32,
    pub rate: Option<f64>,
    pub headers: Vec<(String, String)>,
}

impl Args {
    /// Check the combination of flags and resolve the address.
    pub fn plan(&self) -> Result<Plan, String> {
        let target = parse_url(&self.url)?;
        let mode = if self.new_conn {
            Mode::NewConn
        } else if self.idle {
            Mode::Idle
        } else {
            Mode::KeepAlive
        };
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.h2 && self.streams == 0 {
            return Err("--streams must be at least 1".into());
        }
        if self.h2 && mode == Mode::NewConn {
            return Err(
                "--h2 and --new-conn cannot be combined (use HTTP/1.1 for a handshake per request)"
                    .into(),
            );
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number".into());
            }
            if mode == Mode::Idle {
                return Err("--rate does not apply to --idle".into());
            }
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if !target.https {
            if self.cert.is_some() || self.cacert.is_some() || self.no_resume || self.h2 {
                return Err(
                    "--cert, --cacert, --no-resume and --h2 need an https:// URL (h2 is ALPN only)"
                        .into(),
                );
            }
        } else if self.cacert.is_none() && !self.insecure {
            return Err("https needs --cacert FILE (or --insecure)".into());
        }
        let headers = self
            .header
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let addr = match find_resolve(&self.resolve, &target.host, target.port)? {
            Some(a) => a,
            None => lookup(&target.host, target.port)?,
        };
        Ok(Plan {
            target,
            addr,
            mode,
            h2: self.h2,
            streams: self.streams,
            connections: self.connections,
            rate: self.rate,
            headers,
        })
    }
}

/// "10s", "250ms", "2m", "1.5" (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}': expected a duration such as 10s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("'{s}': a duration cannot be negative"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_url(url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("--url '{url}': {why}");
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with https:// or http://"));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if authority.contains('@') {
        return Err(bad("user information is not supported"));
    }
    let (host, port) = split_host_port(authority).map_err(|e| bad(&e))?;
    let default_port = if https { 443 } else { 80 };
    let port = port.unwrap_or(default_port);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let host_in_header = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let authority = if port == default_port {
        host_in_header
    } else {
        format!("{host_in_header}:{port}")
    };
    Ok(Target {
        https,
        host,
        port,
        path,
        authority,
    })
}

/// "host", "host:port", "[v6]" or "[v6]:port" -> (host without brackets, port).
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("bad port '{p}'"))
            .and_then(|n| {
                if n == 0 {
                    Err("port 0".to_string())
                } else {
                    Ok(n)
                }
            })
    };
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '['")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{after}' after ']'")),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_ascii_lowercase(), Some(parse_port(p)?))),
        None => Ok((s.to_ascii_lowercase(), None)),
    }
}

/// curl's "HOST:PORT:ADDR" (ADDR may be bracketed IPv6): the entry for this host and port.
fn find_resolve(entries: &[String], host: &str, port: u16) -> Result<Option<SocketAddr>, String> {
    for e in entries {
        let (h, rest) = e
            .split_once(':')
            .ok_or_else(|| format!("--resolve '{e}': expected HOST:PORT:ADDR"))?;
        let (p, a) = rest
            .split_once(':')
            .ok_or_else(|| format!("--resolve '{e}': expected HOST:PORT:ADDR"))?;
        let p: u16 = p
            .parse()
            .map_err(|_| format!("--resolve '{e}': bad port '{p}'"))?;
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("--resolve '{e}': '{a}' is not an IP address"))?;
        if h.eq_ignore_ascii_case(host) && p == port {
            return Ok(Some(SocketAddr::new(ip, p)));
        }
    }
    Ok(None)
}

fn lookup(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' has no address"))
}

fn parse_header(h: &str) -> Result<(String, String), String> {
    let (n, v) = h
        .split_once(':')
        .ok_or_else(|| format!("--header '{h}': expected 'Name: value'"))?;
    let n = n.trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(format!("--header '{h}': bad header name"));
    }
    if v.contains(['\r', '\n']) {
        return Err(format!("--header '{h}': line breaks are not allowed"));
    }
    Ok((n.to_string(), v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut v = vec!["loadgen", "--url", "https://h.example:8443/p", "-k"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn urls() {
        let t = parse_url("https://Partner.Example.com:8443/a/b?c=d").unwrap();
        assert!(t.https);
        assert_eq!(t.host, "partner.example.com");
        assert_eq!(t.port, 8443);
        assert_eq!(t.path, "/a/b?c=d");
        assert_eq!(t.authority, "partner.example.com:8443");

        let t = parse_url("http://h").unwrap();
        assert_eq!((t.https, t.port, t.path.as_str()), (false, 80, "/"));
        assert_eq!(t.authority, "h");
        assert_eq!(parse_url("https://h?x=1").unwrap().path, "/?x=1");
        assert_eq!(parse_url("https://h:443/").unwrap().authority, "h");

        let t = parse_url("https://[::1]:9443/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9443));
        assert_eq!(t.authority, "[::1]:9443");

        for bad in [
            "ftp://h/",
            "h:80/",
            "https://:80/",
            "https://h:0/",
            "https://h:99999/",
            "https://u@h/",
            "https://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_entries() {
        let e = vec![
            "other:8443:10.0.0.1".to_string(),
            "h.example:8443:127.0.0.2".to_string(),
            "v6:443:[::1]".to_string(),
        ];
        assert_eq!(
            find_resolve(&e, "h.example", 8443).unwrap(),
            Some("127.0.0.2:8443".parse().unwrap())
        );
        assert_eq!(find_resolve(&e, "h.example", 443).unwrap(), None);
        assert_eq!(
            find_resolve(&e, "v6", 443).unwrap(),
            Some("[::1]:443".parse().unwrap())
        );
        assert!(find_resolve(&["h:1".to_string()], "h", 1).is_err());
        assert!(find_resolve(&["h:1:nope".to_string()], "h", 1).is_err());
    }

    #[test]
    fn defaults_and_plan() {
        let a = args(&["--resolve", "h.example:8443:127.0.0.1"]).unwrap();
        let p = a.plan().unwrap();
        assert_eq!(p.mode, Mode::KeepAlive);
        assert_eq!(p.addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(p.connections, 16);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(2));
        assert_eq!(a.groups, vec!["x25519", "p256"]);
        assert!(!a.no_resume && !a.h2 && p.rate.is_none());
    }

    #[test]
    fn modes_and_options() {
        let a = args(&[
            "--new-conn",
            "--no-resume",
            "-c",
            "32",
            "--rate",
            "1000",
            "-d",
            "3s",
            "--warmup",
            "500ms",
            "--resolve",
            "h.example:8443:127.0.0.1",
            "-H",
            "x-a: b c",
            "--cpu-pid",
            "12",
            "--cpu-pid",
            "13",
            "--groups",
            "x25519,p256",
        ])
        .unwrap();
        let p = a.plan().unwrap();
        assert_eq!(p.mode, Mode::NewConn);
        assert!(a.no_resume);
        assert_eq!(p.connections, 32);
        assert_eq!(p.rate, Some(1000.0));
        assert_eq!(a.duration, Duration::from_secs(3));
        assert_eq!(a.warmup, Duration::from_millis(500));
        assert_eq!(p.headers, vec![("x-a".to_string(), "b c".to_string())]);
        assert_eq!(a.cpu_pid, vec![12, 13]);
        assert_eq!(a.groups, vec!["x25519", "p256"]);

        let a = args(&[
            "--h2",
            "--streams",
            "4",
            "--resolve",
            "h.example:8443:127.0.0.1",
        ])
        .unwrap();
        let p = a.plan().unwrap();
        assert!(p.h2);
        assert_eq!(p.streams, 4);
    }

    #[test]
    fn rejected_combinations() {
        // clap: one mode only; --cert needs --key.
        assert!(args(&["--keepalive", "--new-conn"]).is_err());
        assert!(args(&["--idle", "--new-conn"]).is_err());
        assert!(args(&["--cert", "c.pem"]).is_err());
        // plan: semantic checks.
        let r = "h.example:8443:127.0.0.1";
        for bad in [
            vec!["--h2", "--new-conn"],
            vec!["--rate", "0"],
            vec!["--rate=-5"],
            vec!["--idle", "--rate", "10"],
            vec!["-c", "0"],
            vec!["--h2", "--streams", "0"],
            vec!["-d", "0s"],
            vec!["-H", "no-colon"],
        ] {
            let mut v = bad.clone();
            v.extend(["--resolve", r]);
            assert!(args(&v).unwrap().plan().is_err(), "{bad:?}");
        }
        let no_ca = Args::try_parse_from(["loadgen", "--url", "https://h/"]).unwrap();
        assert!(no_ca.plan().unwrap_err().contains("--cacert"));
        let plain_h2 =
            Args::try_parse_from(["loadgen", "--url", "http://127.0.0.1:1/", "--h2"]).unwrap();
        assert!(plain_h2.plan().is_err());
    }
}

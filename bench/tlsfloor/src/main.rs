//! tlsfloor: the smallest mutual-TLS HTTP server we can write on OpenSSL
//! (the library tlsgate ships) and on rustls with aws-lc-rs, so `bench/run`
//! can tell what the TLS library costs a handshake, a request and an idle
//! connection apart from what the gateway adds. Both variants share
//! everything but the acceptor: one single-threaded tokio runtime,
//! mimalloc, a 1 KiB read buffer, one canned 1 KiB response per request.
//! It is a measuring instrument, not a server to deploy: no routing, no
//! limits, no reloads.

mod http;
mod ossl;
mod rust;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lib {
    /// OpenSSL 3 (the build tlsgate links), through tokio-openssl
    Openssl,
    /// rustls 0.23 with the aws-lc-rs provider, through tokio-rustls
    Rustls,
}

/// A minimal mTLS server on one TLS library, for bench/run's tls_floor
/// scenario.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Which TLS library terminates the connections
    #[arg(long, value_enum)]
    lib: Lib,
    /// Address to listen on (127.0.0.1:0 picks a port; it is printed)
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Server certificate chain (PEM, leaf first)
    #[arg(long)]
    cert: PathBuf,
    /// Server private key (PEM)
    #[arg(long)]
    key: PathBuf,
    /// CA bundle (PEM) that client certificates must chain to
    #[arg(long)]
    client_ca: PathBuf,
}

/// The acceptor of the chosen library, built once.
enum Acceptor {
    Openssl(ossl::Acceptor),
    Rustls(rust::Acceptor),
}

/// Counts shown at exit: a run with failed handshakes measured something
/// else than it meant to.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

fn main() -> anyhow::Result<()> {
    // As tlsgate does, so the OpenSSL side is measured as tlsgate runs it.
    tlsgate_ossl::allocate_with_mimalloc();
    let args = Args::parse();
    let pem = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let (cert, key, ca) = (pem(&args.cert)?, pem(&args.key)?, pem(&args.client_ca)?);
    let acceptor = Arc::new(match args.lib {
        Lib::Openssl => Acceptor::Openssl(ossl::Acceptor::new(&cert, &key, &ca)?),
        Lib::Rustls => Acceptor::Rustls(rust::Acceptor::new(&cert, &key, &ca)?),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        eprintln!(
            "tlsfloor ({:?}) listening on {}",
            args.lib,
            listener.local_addr()?
        );
        let stop = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move { serve(&acceptor, tcp).await });
                    }
                    // Out of descriptors and the like: keep serving the
                    // connections already open.
                    Err(e) => eprintln!("accept: {e}"),
                },
                _ = &mut stop => break,
                _ = term.recv() => break,
            }
        }
        eprintln!(
            "tlsfloor: {} handshakes, {} failed",
            ACCEPTED.load(Ordering::Relaxed),
            FAILED.load(Ordering::Relaxed)
        );
        anyhow::Ok(())
    })
}

async fn serve(acceptor: &Acceptor, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    match acceptor {
        Acceptor::Openssl(a) => match a.accept(tcp).await {
            Ok(tls) => http::serve(counted(tls)).await,
            Err(_) => failed(),
        },
        Acceptor::Rustls(a) => match a.accept(tcp).await {
            Ok(tls) => http::serve(counted(tls)).await,
            Err(_) => failed(),
        },
    }
}

fn counted<S>(tls: S) -> S {
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    tls
}

fn failed() {
    FAILED.fetch_add(1, Ordering::Relaxed);
}

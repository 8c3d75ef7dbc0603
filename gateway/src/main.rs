//! The `tlsgate` command: `run`, `check`, `certs`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

use tlsgate_certs as certgen;
use tlsgate_config::{AccessLogFormat, ConfigErrors, Model, Overrides, Protocol};
use tlsgate_core::runtime::{self, Runtime};
use tlsgate_server::admin::{Admin, Readiness};
use tlsgate_server::watch::{self, ConfigSource, Reloader};
use tlsgate_server::{embedded, listen, proxy, tls};

#[derive(Parser, Debug)]
#[command(
    name = "tlsgate",
    version,
    about = "Ingress/egress TLS gateway that reads Istio YAML"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the configuration (the embedded default when no --config is given).
    Run(RunArgs),
    /// Load and validate everything a run would, then exit (0 = valid; what
    /// is ignored is printed as warnings).
    Check(CheckArgs),
    /// Create CAs, server credentials and client certificates.
    #[command(subcommand)]
    Certs(certgen::CertsCommand),
    /// Tell a running tlsgate to drain (readiness 503, still serving), then
    /// wait: a Kubernetes preStop hook, before SIGTERM.
    Drain(DrainArgs),
}

#[derive(Args, Debug)]
struct DrainArgs {
    /// The gateway's admin address.
    #[arg(long, default_value = "127.0.0.1:15021")]
    admin: SocketAddr,
    /// How long to wait afterwards (e.g. 5s), for load balancers and the
    /// Service's endpoints to stop sending new connections.
    #[arg(long, default_value = "5s", value_parser = wait_duration)]
    wait: std::time::Duration,
}

fn wait_duration(s: &str) -> Result<std::time::Duration, String> {
    let secs = s.strip_suffix('s').unwrap_or(s);
    secs.parse::<u64>()
        .map(std::time::Duration::from_secs)
        .map_err(|_| format!("'{s}': whole seconds, e.g. 5s"))
}

/// `POST /drain` to the admin port, then the wait.
fn drain(args: DrainArgs) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut c =
        std::net::TcpStream::connect_timeout(&args.admin, std::time::Duration::from_secs(5))
            .with_context(|| format!("connecting to the admin port {}", args.admin))?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        c,
        "POST /drain HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        args.admin
    )?;
    let mut answer = String::new();
    c.take(64 * 1024).read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        anyhow::bail!("the gateway refused to drain: {status}");
    }
    println!("draining; waiting {:?}", args.wait);
    std::thread::sleep(args.wait);
    Ok(())
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Serve every request through Pingora's proxy, not the direct
    /// HTTP/1.1 path (for comparison, or should the direct path misbehave).
    #[arg(long)]
    no_direct: bool,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Refuse the configuration when anything in it would be ignored.
    #[arg(long)]
    strict: bool,
}

#[derive(Args, Debug)]
struct ConfigArgs {
    /// A YAML file or a directory of them; repeatable.
    #[arg(long = "config", short = 'c', value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Admin listen address (overrides GatewayRuntime.spec.admin).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Credentials directory (overrides GatewayRuntime.spec.credentialsDir).
    #[arg(long, value_name = "DIR")]
    credentials: Option<PathBuf>,
}

// Pingora allocates per request (headers, buffers, tasks): glibc's malloc
// showed up at ~10% of a keep-alive profile; mimalloc's per-thread heaps
// cost less.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything can make OpenSSL allocate.
    let openssl_on_mimalloc = tlsgate_ossl::allocate_with_mimalloc();
    let cli = Cli::parse();
    if !openssl_on_mimalloc {
        eprintln!("tlsgate: OpenSSL had allocated already: it keeps the system allocator");
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Check(args) => check(args),
        Command::Certs(cmd) => certgen::run(&cmd).map_err(anyhow::Error::from),
        Command::Drain(args) => drain(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tlsgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where the configuration comes from, with the command line's overrides.
fn source(args: &ConfigArgs) -> anyhow::Result<(ConfigSource, Overrides)> {
    let mut overrides = Overrides {
        admin: args.admin,
        credentials_dir: args.credentials.clone(),
    };
    if !args.config.is_empty() {
        return Ok((ConfigSource::Files(args.config.clone()), overrides));
    }
    let dir = std::env::temp_dir().join(format!("tlsgate-default-{}", std::process::id()));
    let creds = embedded::write_credentials(&dir)
        .with_context(|| format!("writing the embedded credentials to {}", dir.display()))?;
    overrides.credentials_dir.get_or_insert(creds);
    let source = ConfigSource::Embedded {
        name: PathBuf::from(embedded::DEFAULT_NAME),
        yaml: embedded::DEFAULT_YAML,
        base_dir: dir,
    };
    Ok((source, overrides))
}

/// Loads the model and builds generation 1, or returns every error found.
fn load(source: &ConfigSource, overrides: &Overrides) -> Result<Runtime, ConfigErrors> {
    let loaded = source.load_all(overrides);
    if loaded.errors.is_empty() {
        return Runtime::build(loaded.model, 1);
    }
    // Credentials are only looked at when the runtime is built; those of
    // the documents that did load are checked anyway, so that one run
    // reports a missing Secret beside a YAML typo.
    // What would have been ignored helps read the errors.
    for w in &loaded.model.warnings {
        eprintln!("warning: {w}");
    }
    let mut errors = loaded.errors;
    errors.extend(runtime::credential_errors(&loaded.model));
    Err(ConfigErrors(errors))
}

fn print_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    eprintln!("{} error(s)", errors.0.len());
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let (source, overrides) = source(&args.config)?;
    let rt = match load(&source, &overrides) {
        Ok(rt) => rt,
        Err(errors) => {
            print_errors(&errors);
            anyhow::bail!("configuration is not valid");
        }
    };
    let m = &rt.model;
    if args.strict && !m.warnings.is_empty() {
        print_errors(&ConfigErrors(
            m.warnings.iter().cloned().map(Into::into).collect(),
        ));
        anyhow::bail!("configuration is not valid under --strict");
    }
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    if !m.warnings.is_empty() {
        eprintln!("{} warning(s)", m.warnings.len());
    }
    println!(
        "configuration OK: {} file(s), {} Gateway(s), {} VirtualService(s), {} DestinationRule(s), {} ServiceEntry(s)",
        m.sources.len(),
        m.gateways.len(),
        m.virtual_services.len(),
        m.destination_rules.len(),
        m.service_entries.len()
    );
    for (addr, proto) in listeners(m) {
        println!("listener {addr} {proto:?}");
    }
    for c in rt.credentials.values() {
        println!(
            "credential {} subject \"{}\" serial {} expires {}",
            c.info.name, c.info.subject, c.info.serial, c.info.not_after
        );
    }
    for line in rt.routes.summary() {
        println!("route {line}");
    }
    Ok(())
}

/// Every data-plane listener: bind address and protocol.
fn listeners(model: &Model) -> BTreeMap<SocketAddr, Protocol> {
    let mut out = BTreeMap::new();
    for gw in &model.gateways {
        for s in &gw.servers {
            out.entry(s.addr()).or_insert(s.protocol);
        }
    }
    out
}

fn init_logging(format: AccessLogFormat) {
    use tracing_subscriber::EnvFilter;
    // Pingora's own info logs repeat what our access and handshake lines say.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    // Access lines are written by a background thread: a slow or blocked
    // stderr must not stall request handling. When its buffer is full, lines
    // are dropped rather than requests delayed.
    static GUARD: std::sync::OnceLock<tracing_appender::non_blocking::WorkerGuard> =
        std::sync::OnceLock::new();
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let _ = GUARD.set(guard);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        AccessLogFormat::Json => builder.json().try_init(),
        AccessLogFormat::Text | AccessLogFormat::Off => builder.try_init(),
    };
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let (source, overrides) = source(&args.config)?;
    let rt = match load(&source, &overrides) {
        Ok(rt) => rt,
        Err(errors) => {
            print_errors(&errors);
            anyhow::bail!("configuration is not valid; nothing started");
        }
    };
    let settings = rt.model.runtime.clone();
    init_logging(settings.access_log);
    let listen = listeners(&rt.model);
    watch::publish_gauges(&rt);
    watch::log_warnings(&rt.model, "start");
    let shared = rt.shared();
    let reloader = Reloader::new(shared.clone(), source, overrides);
    reloader
        .spawn_watcher()
        .context("starting the configuration watcher")?;
    reloader
        .spawn_sighup()
        .context("installing the SIGHUP handler")?;
    tlsgate_server::crl_fetch::spawn(shared.clone()).context("starting the CRL fetcher")?;

    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let conf = ServerConf {
        threads: settings.threads,
        // One single-threaded runtime per worker thread: a connection's
        // tasks stay on one thread, without the multi-threaded
        // scheduler's cross-thread queues and wake-ups (bench: +8%
        // keep-alive requests per CPU-second).
        work_stealing: false,
        // Pingora stops accepting at once, then sleeps the grace period while
        // in-flight requests finish, then drops whatever tasks remain: the
        // time requests get to finish is its grace period, not its runtime
        // shutdown timeout.
        grace_period_seconds: Some(whole_seconds(
            settings.grace_period + settings.shutdown_timeout,
        )),
        graceful_shutdown_timeout_seconds: Some(1),
        // Per-process paths: several gateways (tests, canaries) may share a host.
        pid_file: tmp.join(format!("tlsgate-{pid}.pid")).display().to_string(),
        upgrade_sock: tmp
            .join(format!("tlsgate-{pid}-upgrade.sock"))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut bound = Vec::new();
    for (addr, proto) in &listen {
        let (kind, tls) = match proto {
            Protocol::Http => (listen::ListenerKind::Http, None),
            Protocol::Tcp => (listen::ListenerKind::Tcp, None),
            Protocol::Https | Protocol::Tls => (
                listen::ListenerKind::Tls,
                Some(listen::TlsFront {
                    acceptor: tls::listener_acceptor(shared.clone(), *addr)?,
                    callbacks: tls::Acceptor,
                    name: addr.to_string().into(),
                }),
            ),
        };
        bound.push(listen::bind(*addr, kind, tls)?);
    }
    let app = proxy::Direct::new(
        &server.configuration,
        proxy::Proxy::new(shared.clone()),
        !args.no_direct,
    );
    let readiness = Readiness::new();
    let data = listen::Front::new(bound, app, shared.clone(), readiness.clone());
    let mut admin = Service::new(
        "admin".to_string(),
        Admin::new(shared.clone(), readiness, Some(reloader)),
    );
    admin.add_tcp(&settings.admin.to_string());

    tracing::info!(
        generation = 1,
        admin = %settings.admin,
        listeners = ?listen.keys().collect::<Vec<_>>(),
        "tlsgate starting"
    );
    server.add_service(data);
    server.add_service(admin);
    server.run_forever()
}

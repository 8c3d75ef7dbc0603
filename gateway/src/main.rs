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
use tlsgate_config::{AccessLogFormat, ConfigErrors, Model, Overrides, Protocol, TlsLibrary};
use tlsgate_core::runtime::{self, Runtime};
use tlsgate_server::admin::{Admin, Readiness};
use tlsgate_server::watch::{self, ConfigSource, Reloader};
use tlsgate_server::{embedded, listen, proxy, tls, upgrade};

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
    /// Start `tlsgate run --upgrade` with these arguments in the
    /// background and return once it serves in place of the running one
    /// (exit 0), or has failed (exit 1, the old one untouched): systemd's
    /// `ExecReload`.
    Upgrade(RunArgs),
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
    /// Take over the listening sockets of the tlsgate running now (named
    /// by the pid file), which then stops accepting, finishes its
    /// connections within its grace period and exits: a binary upgrade,
    /// or a restart, without a refused connection.
    #[arg(long)]
    upgrade: bool,
    #[command(flatten)]
    handover: HandoverArgs,
}

#[derive(Args, Debug, Clone)]
struct HandoverArgs {
    /// Holds the PID of the serving process [default:
    /// $TMPDIR/tlsgate-<uid>/tlsgate-<admin port>.pid]. Its folder must
    /// not be open to other users.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Where the sockets are handed over at an upgrade [default:
    /// $TMPDIR/tlsgate-<uid>/tlsgate-<admin port>.upgrade.sock]. Its
    /// folder must not be open to other users.
    #[arg(long, value_name = "FILE")]
    upgrade_socket: Option<PathBuf>,
}

impl HandoverArgs {
    fn paths(&self, admin: SocketAddr) -> upgrade::Paths {
        let defaults = upgrade::Paths::for_admin(admin, &upgrade::Paths::default_dir());
        upgrade::Paths {
            pid_file: self.pid_file.clone().unwrap_or(defaults.pid_file),
            socket: self.upgrade_socket.clone().unwrap_or(defaults.socket),
        }
    }
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
    /// TLS library of the listeners: openssl or rustls (overrides
    /// GatewayRuntime.spec.tlsLibrary).
    #[arg(long, value_name = "LIB")]
    tls_library: Option<String>,
}

fn parse_tls_library(s: &str) -> anyhow::Result<tlsgate_config::TlsLibrary> {
    tlsgate_config::TlsLibrary::parse(s)
        .ok_or_else(|| anyhow::anyhow!("--tls-library {s}: expected openssl or rustls"))
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
        Command::Upgrade(args) => upgrade_in_background(args),
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
        tls_library: args
            .tls_library
            .as_deref()
            .map(parse_tls_library)
            .transpose()?,
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
        let rt = Runtime::build(loaded.model, 1)?;
        // What rustls cannot serve is a configuration error, told by
        // `check` as by `run`.
        if rt.model.runtime.tls_library == TlsLibrary::Rustls {
            tls::by_rustls::check(&rt)?;
        }
        return Ok(rt);
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

/// [`load`], with every error printed; `what` says what did not happen.
fn load_or_report(
    source: &ConfigSource,
    overrides: &Overrides,
    what: &str,
) -> anyhow::Result<Runtime> {
    load(source, overrides).map_err(|errors| {
        print_errors(&errors);
        anyhow::anyhow!("configuration is not valid{what}")
    })
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let (source, overrides) = source(&args.config)?;
    let rt = load_or_report(&source, &overrides, "")?;
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

/// How long `tlsgate upgrade` waits for the new process to serve: it
/// waits up to 10 s to signal, Pingora up to 6 s for the sockets.
const UPGRADE_WAIT: Duration = Duration::from_secs(60);

/// `tlsgate upgrade ARGS`: `tlsgate run --upgrade ARGS`, detached, and
/// its outcome. The new process outlives this one (its own process
/// group; under systemd it stays in the unit and names itself the main
/// process).
fn upgrade_in_background(args: RunArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let (source, overrides) = source(&args.config)?;
    let rt = load_or_report(&source, &overrides, "; nothing upgraded")?;
    let paths = args.handover.paths(rt.model.runtime.admin);
    drop(rt);
    let exe = std::env::current_exe().context("finding this executable")?;
    // Everything after `upgrade`, as given.
    let passed: Vec<std::ffi::OsString> = std::env::args_os().skip(2).collect();
    let mut child = std::process::Command::new(exe)
        .arg("run")
        .arg("--upgrade")
        .args(passed)
        .stdin(std::process::Stdio::null())
        // Its logs go to stderr, shared (the journal, under systemd); this
        // command's own stdout must close when it exits, for whoever
        // reads it to the end.
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting tlsgate run --upgrade")?;
    let deadline = std::time::Instant::now() + UPGRADE_WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the new tlsgate exited ({status}), see its log above: unless it had received the listening sockets, the running tlsgate was not signalled and serves on");
        }
        let named = std::fs::read_to_string(&paths.pid_file).unwrap_or_default();
        if named.trim() == child.id().to_string() {
            println!("upgraded: tlsgate {} serves", child.id());
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the new tlsgate ({}) did not take over within {UPGRADE_WAIT:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn init_logging(format: AccessLogFormat) {
    use tracing_subscriber::EnvFilter;
    // Pingora's own info logs repeat what our access and handshake lines say.
    // Its socket handover logs its first, expected, empty accept as an
    // error; a failed handover is ours to report (`upgrade::UpgradeError`).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,pingora_core=warn,pingora_proxy=warn,pingora=warn,pingora_core::server::transfer_fd=off",
        )
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
    let rt = load_or_report(&source, &overrides, "; nothing started")?;
    let settings = rt.model.runtime.clone();
    init_logging(settings.access_log);
    let listen = listeners(&rt.model);
    watch::publish_gauges(&rt);
    watch::log_warnings(&rt.model, "start");
    if settings.tls_library == TlsLibrary::Rustls {
        // Checked by `load`: each policy's config is built and kept.
        tls::by_rustls::serve_listeners();
        tls::by_rustls::apply_limits(&rt);
        tracing::info!("listeners terminate TLS with rustls and aws-lc-rs");
    } else {
        tracing::info!("listeners terminate TLS with OpenSSL");
    }
    let shared = rt.shared();
    let reloader = Reloader::new(shared.clone(), source, overrides);
    reloader
        .spawn_watcher()
        .context("starting the configuration watcher")?;
    reloader
        .spawn_sighup()
        .context("installing the SIGHUP handler")?;
    tlsgate_server::crl_fetch::spawn(shared.clone()).context("starting the CRL fetcher")?;

    let paths = args.handover.paths(settings.admin);
    // The next upgrade hands this process's sockets over through that
    // folder: one other users could reach turns upgrades off (SIGQUIT is
    // then ignored), not the gateway.
    let handover = match paths.check() {
        Ok(()) => Ok(paths.clone()),
        Err(e) if !args.upgrade => {
            tracing::error!(error = %e, "upgrades are off: no pid file, SIGQUIT ignored");
            Err(e.to_string())
        }
        Err(e) => return Err(e).context("upgrading"),
    };
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
        pid_file: paths.pid_file.display().to_string(),
        // Where this process sends its sockets when the next one asks
        // (SIGQUIT, from `tlsgate run --upgrade`).
        upgrade_sock: paths.socket.display().to_string(),
        ..ServerConf::default()
    };
    let sockets = listen.len() + 1;
    if sockets > upgrade::MAX_HANDOVER_SOCKETS {
        tracing::warn!(
            sockets,
            max = upgrade::MAX_HANDOVER_SOCKETS,
            "more listening sockets than an upgrade can hand over: SIGQUIT will be ignored"
        );
    }
    let mut fronts = Vec::new();
    for (addr, proto) in &listen {
        let (kind, tls) = match proto {
            Protocol::Http => (listen::ListenerKind::Http, None),
            Protocol::Tcp => (listen::ListenerKind::Tcp, None),
            Protocol::Https | Protocol::Tls => (
                listen::ListenerKind::Tls,
                Some(listen::TlsFront {
                    library: match settings.tls_library {
                        TlsLibrary::OpenSsl => listen::Library::OpenSsl {
                            acceptor: tls::listener_acceptor(shared.clone(), *addr)?,
                            callbacks: tls::Acceptor,
                        },
                        TlsLibrary::Rustls => listen::Library::Rustls {
                            rt: shared.clone(),
                            addr: *addr,
                        },
                    },
                    name: addr.to_string().into(),
                }),
            ),
        };
        fronts.push((*addr, kind, tls));
    }
    // Everything above is checked before the old process is asked for its
    // sockets: from then on it stops accepting within seconds, whatever
    // happens here.
    let mut inherited = if args.upgrade {
        let mut mine: Vec<SocketAddr> = listen.keys().copied().collect();
        mine.push(settings.admin);
        Some(upgrade::take_over(&paths, &mine).context("upgrading")?)
    } else {
        None
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut bound = Vec::new();
    for (addr, kind, tls) in fronts {
        bound.push(listen::bind(addr, kind, tls, inherited.as_mut())?);
    }
    let admin_socket = match inherited.as_mut().map(|i| i.take(settings.admin)) {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            tracing::error!(error = %e, "the admin port is bound anew");
            None
        }
        None => None,
    };
    // What the old process listened on and this configuration does not.
    drop(inherited);
    let app = proxy::Direct::new(
        &server.configuration,
        proxy::Proxy::new(shared.clone()),
        !args.no_direct,
    );
    let readiness = Readiness::new();
    let pid_file = handover.is_ok().then(|| paths.pid_file.clone());
    let mut data = listen::Front::new(bound, app, shared.clone(), readiness.clone())
        .pid_file(pid_file, settings.admin.to_string());
    if let Some(l) = admin_socket {
        data = data.inherited_admin(settings.admin.to_string(), l);
    }
    let mut admin = Service::new(
        "admin".to_string(),
        Admin::new(shared.clone(), readiness, Some(reloader)),
    );
    admin.add_tcp(&settings.admin.to_string());

    tracing::info!(
        generation = 1,
        admin = %settings.admin,
        listeners = ?listen.keys().collect::<Vec<_>>(),
        upgrade = args.upgrade,
        "tlsgate starting"
    );
    let data = server.add_service(data);
    let admin = server.add_service(admin);
    // The admin service finds its inherited socket in the table the data
    // service fills.
    admin.add_dependency(&data);
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(upgrade::Signals::new(handover, sockets)),
    });
    std::process::exit(0)
}

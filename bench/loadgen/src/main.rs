//! loadgen: an HTTPS load generator for TLS gateways (tokio + rustls with
//! aws-lc-rs). See `loadgen --help` and bench/README.md.

#![forbid(unsafe_code)]

mod args;
mod conn;
mod cpu;
mod h1;
mod run;
mod schedule;
mod stats;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use args::{Args, Mode, Plan};
use stats::{round3, summarize, Recorder};

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = if plan.target.https {
        match tls::client_config(&args, plan.h2) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let connector = match conn::Connector::new(plan.addr, &plan.target.host, tls, plan.h2) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let h2_request = if plan.h2 {
        match h2_parts(&plan) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(async {
        let t0 = Instant::now();
        // --idle has no warm-up: everything it does is the measurement.
        let warmup = if plan.mode == Mode::Idle {
            Duration::ZERO
        } else {
            args.warmup
        };
        let warm_end = t0 + warmup;
        let end = warm_end + args.duration;
        let schedule = match plan.rate {
            Some(r) => schedule::Schedule::open(r, t0, end),
            None => schedule::Schedule::closed(end),
        };
        let cpu = (!args.cpu_pid.is_empty()).then(|| {
            let pids = args.cpu_pid.clone();
            let (a, b) = (warm_end.into_std(), end.into_std());
            std::thread::spawn(move || {
                sleep_until_std(a);
                let before = cpu::total(&pids);
                sleep_until_std(b);
                let after = cpu::total(&pids);
                Some(after?.since(before?))
            })
        });
        let ctx = Arc::new(run::Ctx {
            request: h1::request_bytes(&plan.target, &plan.headers),
            h2_request,
            plan: plan.clone(),
            connector,
            schedule,
            timeout: args.timeout,
            warm_end,
            end,
        });
        let mut set = JoinSet::new();
        run::spawn_all(ctx.clone(), &mut set);
        let mut total = Recorder::default();
        // Workers stop at `end`; this bound only guards against a bug.
        let guard = end + Duration::from_secs(5) + args.timeout;
        while let Ok(Some(r)) = tokio::time::timeout_at(guard, set.join_next()).await {
            total.merge(r.unwrap_or_default());
        }
        set.abort_all();
        let cpu = cpu.and_then(|h| h.join().ok().flatten());
        // Requests the open loop never managed to start enter the
        // percentiles with the wait they had reached at the end.
        let unsent = ctx.schedule.unsent_waits(warm_end).map(|waits| {
            for w in &waits {
                total.latency(*w);
            }
            waits.len() as u64
        });
        let tls = ctx.connector.negotiated.get().cloned();
        report(&args, &plan, total, cpu, unsent, tls)
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    println!("{report}");
    if report["ok"].as_u64() == Some(0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn sleep_until_std(t: std::time::Instant) {
    std::thread::sleep(t.saturating_duration_since(std::time::Instant::now()));
}

fn h2_parts(plan: &Plan) -> Result<(http::Uri, http::HeaderMap), String> {
    let t = &plan.target;
    let uri: http::Uri = format!("https://{}{}", t.authority, t.path)
        .parse()
        .map_err(|e| format!("--url: {e}"))?;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("loadgen"),
    );
    for (n, v) in &plan.headers {
        let name = http::HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("--header {n}: {e}"))?;
        let value = http::HeaderValue::from_str(v).map_err(|e| format!("--header {n}: {e}"))?;
        headers.append(name, value);
    }
    Ok((uri, headers))
}

fn report(
    args: &Args,
    plan: &Plan,
    mut total: Recorder,
    cpu: Option<cpu::Cpu>,
    unsent: Option<u64>,
    tls: Option<String>,
) -> serde_json::Value {
    let s = summarize(&mut total.latencies_us);
    let ok = total.requests - total.non_2xx;
    let secs = args.duration.as_secs_f64();
    let cpu_s = cpu.map(|c| c.total().as_secs_f64());
    let system_s = cpu.map(|c| c.system.as_secs_f64());
    json!({
        "url": args.url,
        "addr": plan.addr.to_string(),
        "mode": match plan.mode {
            Mode::KeepAlive => "keepalive",
            Mode::NewConn => "new-conn",
            Mode::Idle => "idle",
        },
        "protocol": if plan.h2 { "h2" } else { "http/1.1" },
        "connections": plan.connections,
        "streams": if plan.h2 { plan.streams } else { 1 },
        "resumption": !args.no_resume,
        "tls": tls,
        "rate": plan.rate,
        "duration_s": secs,
        "warmup_s": if plan.mode == Mode::Idle { 0.0 } else { args.warmup.as_secs_f64() },
        "requests": total.requests,
        "ok": ok,
        "non_2xx": total.non_2xx,
        "errors": total.errors,
        "unsent": unsent,
        "handshakes_full": total.handshakes_full,
        "handshakes_resumed": total.handshakes_resumed,
        "rps": round3(ok as f64 / secs),
        "mean_ms": round3(s.mean),
        "p50_ms": s.p50,
        "p90_ms": s.p90,
        "p99_ms": s.p99,
        "p999_ms": s.p999,
        "max_ms": s.max,
        "proxy_cpu_s": cpu_s.map(round3),
        "rps_per_proxy_cpu_s": cpu_s.filter(|&c| c > 0.0).map(|c| round3(ok as f64 / c)),
        "proxy_system_cpu_s": system_s.map(round3),
        "errors_by_kind": total.error_kinds,
    })
}

//! The seed runbooks (`integration/seeds/seed-*.sh`, listed in the README's
//! "Seed runbooks"): each runs a tutorial's curl sequence against the real
//! binary and exits 0 only if every step passed.

use std::path::PathBuf;
use std::time::Duration;

use tlsgate_integration::script::run_script;
use tlsgate_integration::*;

/// A runbook starts one to three gateways and checks a dozen curls; 120 s is
/// far more than it needs even on a loaded machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn seeds_dir() -> PathBuf {
    workspace_root().join("integration").join("seeds")
}

fn run_seed(name: &str) {
    let script = seeds_dir().join(format!("{name}.sh"));
    assert!(script.is_file(), "{} is missing", script.display());
    let bin = tlsgate_bin();
    let bin = bin.to_string_lossy();
    let out = run_script(
        &script,
        &[("TLSGATE", &bin)],
        &workspace_root(),
        SCRIPT_TIMEOUT,
    );
    assert!(
        out.success() && !out.timed_out,
        "{} failed ({}):\n{out}",
        script.display(),
        if out.timed_out {
            "timed out"
        } else {
            "non-zero exit"
        }
    );
    assert!(
        out.stdout.contains("RESULT: PASS") && !out.stdout.contains("FAIL:"),
        "{} exited 0 without passing every step:\n{out}",
        script.display()
    );
}

#[test]
fn seed_000_ingress_tls_mtls_pirate_then_trusted_by_reload() {
    run_seed("seed-000");
}

#[test]
fn seed_001_strict_mtls_refuses_plain_http() {
    run_seed("seed-001");
}

#[test]
fn seed_002_egress_mtls_origination_registry_only_and_reload() {
    run_seed("seed-002");
}

#[test]
fn seed_003_permissive_then_strict() {
    run_seed("seed-003");
}

#[test]
fn seed_004_reencrypting_router_in_front_of_the_gateway() {
    run_seed("seed-004");
}

/// Every runbook is listed in the README with its configuration, and every
/// configuration it copies exists.
#[test]
fn runbooks_are_documented_and_their_configs_exist() {
    let readme = readme::readme();
    let section =
        readme::section(&readme, "Seed runbooks").expect("README has a 'Seed runbooks' section");
    let mut scripts: Vec<String> = std::fs::read_dir(seeds_dir())
        .expect("read integration/seeds")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seed-") && n.ends_with(".sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 4, "runbooks: {scripts:?}");
    for s in &scripts {
        let path = format!("integration/seeds/{s}");
        assert!(
            section.contains(&path),
            "README's Seed runbooks does not list {path}"
        );
        let text = std::fs::read_to_string(seeds_dir().join(s)).unwrap();
        for conf in text
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter_map(|w| w.strip_prefix("$ROOT/conf/"))
        {
            assert!(
                conf_file(conf).is_file(),
                "{s} copies conf/{conf}, which does not exist"
            );
            assert!(
                section.contains(&format!("conf/{conf}")),
                "README's Seed runbooks does not name conf/{conf} ({s})"
            );
        }
    }
}

//! A newcomer follows the README's "Your own certificates" literally: the
//! `tlsgate certs` commands, the configuration shown, `tlsgate check` and
//! `tlsgate run`, and the `curl` line `tlsgate certs server` printed (with
//! `CLIENT` replaced as the README says). Only the port is changed, so that
//! tests run side by side, and `--admin` is added for the same reason.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use tlsgate_integration::config::substitute;
use tlsgate_integration::readme::{code_blocks, commands, readme, section, shell_words};
use tlsgate_integration::*;

const SECTION: &str = "Your own certificates";
/// The README says: replace `CLIENT` in the printed line with alice's folder.
const CLIENT_PLACEHOLDER: &str = "CLIENT";
const CLIENT_DIR: &str = "my-certs/clients/alice";
/// The port the README's configuration and curl line use.
const README_PORT: &str = "8443";

struct Walkthrough {
    /// `tlsgate certs ...` commands, in order.
    certs: Vec<Vec<String>>,
    /// Other `tlsgate ...` commands (check, run), in order.
    gateway: Vec<Vec<String>>,
    /// The configuration and the file name the run command gives it.
    config_yaml: String,
    config_name: String,
    /// The curl command line, as written.
    curl: String,
}

fn walkthrough() -> Walkthrough {
    let readme = readme();
    let text =
        section(&readme, SECTION).unwrap_or_else(|| panic!("README has no '{SECTION}' section"));
    let blocks = code_blocks(&text);
    let yaml: Vec<_> = blocks.iter().filter(|b| b.lang == "yaml").collect();
    assert_eq!(yaml.len(), 1, "one configuration in '{SECTION}'");
    let mut certs = Vec::new();
    let mut gateway = Vec::new();
    let mut curl = Vec::new();
    for b in blocks.iter().filter(|b| b.lang == "sh") {
        for c in commands(&b.body) {
            let words = shell_words(&c).unwrap();
            match words.first().map(String::as_str) {
                Some("tlsgate") if words.get(1).map(String::as_str) == Some("certs") => {
                    certs.push(words[1..].to_vec())
                }
                Some("tlsgate") => gateway.push(words[1..].to_vec()),
                Some("curl") => curl.push(c.clone()),
                other => {
                    panic!("'{SECTION}' has a command a newcomer cannot run here: {other:?} in {c}")
                }
            }
        }
    }
    assert_eq!(
        certs.len(),
        3,
        "a CA, a server credential, a client: {certs:?}"
    );
    assert_eq!(curl.len(), 1, "one curl line: {curl:?}");
    let run = gateway
        .iter()
        .find(|g| g[0] == "run")
        .unwrap_or_else(|| panic!("'{SECTION}' shows no `tlsgate run`"));
    let config_name = config_arg(run);
    for g in &gateway {
        assert_eq!(
            config_arg(g),
            config_name,
            "check and run use the same file"
        );
    }
    assert!(
        text.contains(&format!("`{config_name}`")),
        "the README says to save the configuration as `{config_name}`"
    );
    assert!(
        text.contains(&format!("`{CLIENT_PLACEHOLDER}`"))
            && text.contains(&format!("`{CLIENT_DIR}`")),
        "the README says to replace `{CLIENT_PLACEHOLDER}` with `{CLIENT_DIR}`"
    );
    Walkthrough {
        certs,
        gateway,
        config_yaml: yaml[0].body.clone(),
        config_name,
        curl: curl.remove(0),
    }
}

fn config_arg(args: &[String]) -> String {
    let i = args
        .iter()
        .position(|a| a == "--config" || a == "-c")
        .unwrap_or_else(|| panic!("no --config in tlsgate {args:?}"));
    args[i + 1].clone()
}

fn tlsgate_in(dir: &Path, args: &[String]) -> CmdOutput {
    let bin = tlsgate_bin();
    run_command(
        bin.as_os_str(),
        args,
        None,
        Duration::from_secs(60),
        Some(dir),
    )
}

fn curl_in(dir: &Path, line: &str, extra: &[&str]) -> CmdOutput {
    let mut args = shell_words(line).unwrap();
    assert_eq!(args.remove(0), "curl");
    // Bounded, and the status printed last.
    let mut all: Vec<String> = vec!["-sS".into(), "--max-time".into(), "5".into()];
    all.extend(extra.iter().map(|s| s.to_string()));
    all.extend(args);
    all.extend(["-w".to_string(), "\n%{http_code}".to_string()]);
    run_command(
        OsStr::new(cmd::CURL),
        &all,
        None,
        Duration::from_secs(15),
        Some(dir),
    )
}

fn status(out: &CmdOutput) -> &str {
    out.stdout.lines().last().unwrap_or("")
}

#[test]
fn newcomer_follows_your_own_certificates_and_gets_200() {
    let w = walkthrough();
    let home = tempfile::Builder::new()
        .prefix("tlsgate-newcomer-")
        .tempdir()
        .unwrap();
    let dir = home.path();

    // 1. The certs commands, as written, from an empty folder.
    let mut printed_curls: Vec<(String, String)> = Vec::new();
    for args in &w.certs {
        let out = tlsgate_in(dir, args);
        assert!(out.success(), "tlsgate {}: {out}", args.join(" "));
        for l in out.stdout.lines() {
            let l = l.trim();
            if l.starts_with("curl ") {
                printed_curls.push((args[1].clone(), l.to_string()));
            }
        }
    }
    let server_curl = printed_curls
        .iter()
        .find(|(cmd, _)| cmd == "server")
        .map(|(_, l)| l.clone())
        .unwrap_or_else(|| {
            panic!("`tlsgate certs server` printed no curl line: {printed_curls:?}")
        });

    // 2. The README's curl line is that printed line with CLIENT replaced.
    assert!(
        server_curl.contains(CLIENT_PLACEHOLDER),
        "the printed line has no {CLIENT_PLACEHOLDER} to replace: {server_curl}"
    );
    assert_eq!(
        w.curl,
        server_curl.replace(CLIENT_PLACEHOLDER, CLIENT_DIR),
        "the README's curl line is not what `tlsgate certs server` prints (with {CLIENT_PLACEHOLDER} -> {CLIENT_DIR})"
    );

    // 3. The configuration, with a free port instead of 8443.
    let port = free_port().to_string();
    let config = dir.join(&w.config_name);
    std::fs::write(
        &config,
        substitute(&w.config_yaml, &[(README_PORT, port.clone())]),
    )
    .unwrap();

    // 4. tlsgate check, as written (run is started below with --admin added).
    for g in w.gateway.iter().filter(|g| g[0] != "run") {
        let out = tlsgate_in(dir, g);
        assert!(out.success(), "tlsgate {}: {out}", g.join(" "));
    }
    let run = w.gateway.iter().find(|g| g[0] == "run").unwrap();
    let mut extra: Vec<String> = run[1..].to_vec();
    // The config path, absolute: the harness starts tlsgate from the workspace.
    let i = extra
        .iter()
        .position(|a| a == "--config" || a == "-c")
        .unwrap();
    extra[i + 1] = config.to_string_lossy().into_owned();
    let gw = Gateway::start_args(&extra).unwrap_or_else(|e| panic!("{e}"));

    // 5. The curl line: 200 and the configured answer.
    let line = substitute(&w.curl, &[(README_PORT, port.clone())]);
    let out = curl_in(dir, &line, &[]);
    assert!(
        out.success() && status(&out) == "200",
        "README's curl line ({line}) did not get 200: {out}\n{}",
        gw.describe()
    );
    assert!(out.stdout.contains("Hello from my gateway"), "{out}");

    // The host really is MUTUAL: without the client certificate, refused.
    let mut words = shell_words(&line).unwrap();
    while let Some(i) = words.iter().position(|a| a == "--cert" || a == "--key") {
        words.drain(i..i + 2);
    }
    let bare = words.join(" ");
    let out = curl_in(dir, &bare, &[]);
    assert!(
        !out.success() && status(&out) != "200",
        "without a client certificate ({bare}): {out}"
    );

    // The line `tlsgate certs client` printed works too, with its
    // placeholders filled in (the server's CA and host).
    if let Some((_, client_curl)) = printed_curls.iter().find(|(cmd, _)| cmd == "client") {
        let ca_dir = w
            .certs
            .iter()
            .find(|c| c[1] == "ca")
            .map(|c| flag(c, "--out"))
            .unwrap();
        let host = w
            .certs
            .iter()
            .find(|c| c[1] == "server")
            .map(|c| flag(c, "--host"))
            .unwrap();
        let filled = client_curl
            .replace("SERVER_CA", &ca_dir)
            .replace("HOST", &host);
        let filled = substitute(&filled, &[(README_PORT, port.clone())]);
        let out = curl_in(dir, &filled, &[]);
        assert!(
            out.success() && status(&out) == "200",
            "`tlsgate certs client`'s line ({filled}): {out}"
        );
    }
    drop(gw);
}

fn flag(args: &[String], name: &str) -> String {
    let i = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("no {name} in {args:?}"));
    args[i + 1].clone()
}

//! What a MUTUAL host's CertificateRequest lists: the client CA bundle's
//! subjects by default, none with `clientCertificateRequest.sendCaNames:
//! false` (for bundles of hundreds of CAs), and the bundle still decides
//! who gets in.

use tlsgate_integration::*;

fn request_names(s: &Seed000) -> String {
    let (crt, key) = client_cert("great-partner");
    let (crt, key) = (crt.to_string_lossy(), key.to_string_lossy());
    let out = s_client_get(
        s.port,
        PARTNER_HOST,
        PARTNER_HOST,
        "/",
        &["-tls1_3", "-cert", &crt, "-key", &key],
    );
    assert!(out.stdout.contains("HTTP/1.1 200"), "{out}");
    out.stdout
}

#[test]
fn ca_names_are_sent_unless_switched_off() {
    let s = Seed000::start();
    let out = request_names(&s);
    assert!(
        out.contains("Acceptable client certificate CA names") && out.contains("Acme"),
        "{out}"
    );
    drop(s);

    let s = Seed000::start_custom(&[], |_, yaml| {
        yaml.replacen(
            "  accessLog:\n    format: text\n",
            "  accessLog:\n    format: text\n  clientCertificateRequest:\n    sendCaNames: false\n",
            1,
        )
    });
    let out = request_names(&s);
    assert!(out.contains("No client certificate CA names sent"), "{out}");
    // The bundle still decides: Acme's client in, Pirate's out.
    let r = s.partner("/").client("great-partner").run();
    assert_eq!(r.status, 200, "{r}");
    let r = s.partner("/").client("bad-partner").run();
    assert!(r.stderr.contains("unknown ca"), "{r}");
}

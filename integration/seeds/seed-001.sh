#!/usr/bin/env bash
# Seed 001 "Walkthrough to Understand Mutual TLS", with tlsgate as httpbin's
# STRICT front door (conf/seed-001-mtls-strict.yaml).
#
# The tutorial: once mutual TLS is STRICT, `curl http://httpbin.foo:8000`
# from the legacy namespace (no sidecar, so plain HTTP and no certificate)
# fails with `curl: (56) Recv failure`, while sleep in foo and bar, whose
# sidecars present mesh certificates, still get 200.
#
# Usage: integration/seeds/seed-001.sh   (TLSGATE=path/to/tlsgate to pick a binary)
# Prints PASS/FAIL per step; exits 0 only if every step passed.
source "$(dirname "$0")/lib.sh"

HOST=httpbin.foo
FQDN=httpbin.foo.svc.cluster.local

say "Certificates: the mesh CA, httpbin's credential, sleep's certificates (tlsgate certs)"
cd "$TMP" || exit 1
tg certs ca --name cluster.local --org "Mesh CA" --out ca/mesh >/dev/null || exit 1
tg certs server --ca ca/mesh --host "$HOST" --host "$FQDN" --client-ca ca/mesh \
    --credential httpbin-credential --credentials-dir credentials >/dev/null || exit 1
for ns in foo bar; do
    tg certs client --ca ca/mesh --name "sleep-$ns" --spiffe "spiffe://cluster.local/ns/$ns/sa/sleep" \
        --out "clients/sleep-$ns" >/dev/null || exit 1
done
# Someone outside the mesh with a CA of their own.
tg certs ca --name legacy.example --org "Legacy Inc." --out ca/legacy >/dev/null || exit 1
tg certs client --ca ca/legacy --name sleep-legacy --out clients/sleep-legacy >/dev/null || exit 1
find credentials clients ca -type f | sort | sed "s/^/  /"

say "httpbin (python3 -m http.server) and tlsgate, STRICT on $HOST:<port>"
mkdir -p www && echo "httpbin: hello from foo" >www/index.html
start_backend httpbin "$TMP/www"
PORT=$(free_port)
ADMIN=$(free_port)
cp "$ROOT/conf/seed-001-mtls-strict.yaml" seed-001.yaml
subst seed-001.yaml "8000=$PORT" "18000=$BACKEND_PORT" "15021=$ADMIN"
check_config "tlsgate check accepts seed-001.yaml" --config seed-001.yaml --credentials credentials
start_gateway gateway "$ADMIN" --config seed-001.yaml --credentials credentials || { fail "gateway ready"; finish; }
pass "gateway ready"

RESOLVE=(--resolve "$HOST:$PORT:127.0.0.1" --resolve "$FQDN:$PORT:127.0.0.1")

say "legacy (no sidecar): curl http://$HOST:$PORT -w \"%{http_code}\" is refused"
expect_refused "plain HTTP to the STRICT port" "" "${RESOLVE[@]}" "http://$HOST:$PORT/"
expect_refused "plain HTTP to the STRICT port (service FQDN)" "" "${RESOLVE[@]}" "http://$FQDN:$PORT/"

say "legacy over TLS but without a mesh certificate is refused"
expect_refused "TLS without a client certificate" "alert|certificate required|handshake failure" \
    --cacert ca/mesh/ca.crt "${RESOLVE[@]}" "https://$HOST:$PORT/"
expect_refused "TLS with a certificate from another CA" "unknown ca" \
    --cacert ca/mesh/ca.crt --cert clients/sleep-legacy/tls.crt --key clients/sleep-legacy/tls.key \
    "${RESOLVE[@]}" "https://$HOST:$PORT/"

say "sleep in foo and bar (mesh certificates): 200"
for ns in foo bar; do
    expect_status "sleep.$ns -> httpbin.foo with its mesh certificate" 200 \
        --cacert ca/mesh/ca.crt --cert "clients/sleep-$ns/tls.crt" --key "clients/sleep-$ns/tls.key" \
        "${RESOLVE[@]}" "https://$HOST:$PORT/" && body_contains "httpbin answered sleep.$ns" "hello from foo"
done
expect_status "sleep.bar -> httpbin.foo.svc.cluster.local" 200 \
    --cacert ca/mesh/ca.crt --cert clients/sleep-bar/tls.crt --key clients/sleep-bar/tls.key \
    "${RESOLVE[@]}" "https://$FQDN:$PORT/"

finish

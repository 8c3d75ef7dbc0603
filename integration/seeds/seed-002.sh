#!/usr/bin/env bash
# Seed 002 "Securing traffic to external Services with mTLS", Option 1b (via
# Egress Gateway, encrypted) with tlsgate on both sides:
#   - the service side (conf/seed-002-service.yaml): greeting.remote.com
#     exposed with MUTUAL TLS (server certificate from the example CA, client
#     certificates must chain to the Acme CA), in front of the greeting app;
#   - the client side's egress gateway (conf/seed-002-egress.yaml,
#     REGISTRY_ONLY): applications speak plain HTTP to it, it originates
#     mutual TLS with the great-partner (Acme) certificate.
# Then the "un-encrypted" variations: REGISTRY_ONLY until a ServiceEntry
# registers the external service (Variation 1), and a STRICT mesh's mutual
# TLS to a plain-HTTP external service fixed by a DestinationRule
# `mode: DISABLE` (Variation 2).
#
# Steps:
#   1. app -> egress, `curl -H 'Host: greeting.remote.com' http://EGRESS/hello`
#      -> 200, through mutual TLS to the service side (client.id great-partner
#      in the service side's access log)
#   2. the same as a forward proxy, `curl -x http://EGRESS http://greeting.remote.com/hello`
#      -> 200; and a CONNECT tunnel carrying the client's own mutual TLS -> 200
#   3. REGISTRY_ONLY: an unregistered host (www.google.com) -> 502 whose body
#      names the host and the policy; nothing leaves the machine (the request
#      is refused, counted in tlsgate_outbound_blocked_total)
#   4. Variation 1: a ServiceEntry for a second local service
#      (rest-greeting-remote...:8080) is appended to the egress configuration,
#      `kill -HUP`; within 3 s it answers 200, same PID (no restart)
#   5. STRICT on the service side: plain HTTP, TLS without a client
#      certificate and a Pirate client certificate are all refused; the Acme
#      client gets 200
#   6. Variation 2: a DestinationRule originating mutual TLS (what a STRICT
#      mesh does) to that plain-HTTP service fails (502); replaced by
#      `mode: DISABLE` + `kill -HUP` -> 200 within 3 s, same PID
#
# Usage: integration/seeds/seed-002.sh   (TLSGATE=path/to/tlsgate to pick a binary)
# Prints PASS/FAIL per step; exits 0 only if every step passed.
source "$(dirname "$0")/lib.sh"

GREETING=greeting.remote.com
REMOTE=rest-greeting-remote.greetings-service.svc.cluster.local

say "Certificates (tlsgate certs), laid out as certs-example/ so the configurations' relative paths hold"
cd "$TMP" || exit 1
C=certs-example
tg certs ca --name example --org "example Inc." --cn example.com --out $C/ca/example >/dev/null || exit 1
tg certs ca --name acme --org "Acme Inc." --cn acme.com --out $C/ca/acme >/dev/null || exit 1
tg certs ca --name pirate --org "Pirate Inc." --cn pirate.com --out $C/ca/pirate >/dev/null || exit 1
# Service side: "Create Certs (with same CA as client) for rest-greeting-remote",
# secret greeting-remote-secret with ca.crt = the CA client certificates chain to.
tg certs server --ca $C/ca/example --host "$GREETING" --client-ca $C/ca/acme \
    --credential greeting-credential --credentials-dir $C/credentials >/dev/null || exit 1
# Client side: greeting-client-secret, the egress gateway's client certificate.
tg certs client --ca $C/ca/acme --name great-partner --cn great-partner.apps.acme.com \
    --org "Great Department" --spiffe spiffe://acme.com/great-partner \
    --out $C/clients/great-partner >/dev/null || exit 1
tg certs client --ca $C/ca/pirate --name bad-partner --cn bad-partner.apps.pirate.com \
    --org "Bad Department" --out $C/clients/bad-partner >/dev/null || exit 1
find $C -type f | sort | sed 's/^/  /'

say "Service side: the greeting app (python3 -m http.server) behind tlsgate, MUTUAL on $GREETING"
mkdir -p conf www-greeting www-remote
echo "Greetings (OCP-48-Cluster) Stelios" >www-greeting/hello
echo "Hello from rest-greeting-remote (mesh external)" >www-remote/hello
start_backend greeting "$TMP/www-greeting"
SVC_PORT=$(free_port)
SVC_ADMIN=$(free_port)
cp "$ROOT/conf/seed-002-service.yaml" conf/service.yaml
subst conf/service.yaml "9443=$SVC_PORT" "9080=$BACKEND_PORT" "15023=$SVC_ADMIN"
check_config "tlsgate check accepts seed-002-service.yaml" --config conf/service.yaml --credentials $C/credentials
start_gateway service "$SVC_ADMIN" --config conf/service.yaml --credentials $C/credentials ||
    { fail "service side ready"; finish; }
pass "service side ready"

say "Client side: the egress gateway (REGISTRY_ONLY, mutual TLS origination to $GREETING)"
# Variation 1's external service: a second greeting app, not registered yet.
start_backend rest-greeting-remote "$TMP/www-remote"
REMOTE_PORT=$BACKEND_PORT
EG_PORT=$(free_port)
EG_ADMIN=$(free_port)
cp "$ROOT/conf/seed-002-egress.yaml" conf/egress.yaml
subst conf/egress.yaml "8080=$EG_PORT" "9443=$SVC_PORT" "15022=$EG_ADMIN"
# File watching off in this copy (reload.watch: false): the `kill -HUP` of
# steps 4 and 6 is what applies each edit, as the tutorial's `oc apply` would.
sed -i -e 's/^  accessLog:$/  reload:\n    watch: false\n  accessLog:/' conf/egress.yaml
grep -q 'watch: false' conf/egress.yaml || { echo "FATAL: could not turn file watching off in conf/egress.yaml"; exit 1; }
check_config "tlsgate check accepts seed-002-egress.yaml" --config conf/egress.yaml
start_gateway egress "$EG_ADMIN" --config conf/egress.yaml || { fail "egress gateway ready"; finish; }
pass "egress gateway ready"
EG_PID=$GW_PID
EGRESS=http://127.0.0.1:$EG_PORT
CLIENT=(--cert "$C/clients/great-partner/tls.crt" --key "$C/clients/great-partner/tls.key")

say "1. app -> egress gateway (Host header) -> mutual TLS -> service side"
expect_status "curl -H 'Host: $GREETING' $EGRESS/hello: 200" 200 \
    -H "Host: $GREETING" "$EGRESS/hello" &&
    body_contains "the greeting app answered" "Greetings (OCP-48-Cluster) Stelios"
# The service side logs the verified client certificate of each request
# (its access line is written just after the response: give it a moment).
seen_great_partner() { grep -a 'status=200' "$TMP/service.log" | grep -aq 'great-partner'; }
for _ in $(seq 20); do seen_great_partner && break; sleep 0.1; done
if seen_great_partner; then
    pass "the service side saw the egress gateway's Acme client certificate (client.id great-partner)"
else
    fail "no access line with client.id great-partner and status 200 in the service side's log"
    grep -a 'status=' "$TMP/service.log" | tail -n 5 | sed 's/^/    /'
fi

say "2. the egress gateway as a forward proxy"
expect_status "curl -x $EGRESS http://$GREETING/hello: 200" 200 \
    -x "$EGRESS" "http://$GREETING/hello" &&
    body_contains "the greeting app answered through the proxy" "Greetings (OCP-48-Cluster) Stelios"
expect_status "curl -x $EGRESS https://$GREETING/hello (CONNECT, the client's own mutual TLS): 200" 200 \
    -x "$EGRESS" --cacert $C/ca/example/ca.crt "${CLIENT[@]}" "https://$GREETING/hello" &&
    body_contains "the greeting app answered through the tunnel" "Greetings (OCP-48-Cluster) Stelios"

say "3. REGISTRY_ONLY: an unregistered host is refused (BlackHoleCluster), nothing is sent out"
expect_status "curl -H 'Host: www.google.com' $EGRESS/: 502" 502 -H "Host: www.google.com" "$EGRESS/" &&
    body_contains "the 502 names the host" "www.google.com" &&
    body_contains "the 502 names the policy" "REGISTRY_ONLY"
expect_status "curl -x $EGRESS http://www.google.com/: 502" 502 -x "$EGRESS" "http://www.google.com/"
# Both refusals counted; a request is counted just after its answer is
# written, so poll (5 s at most).
for _ in $(seq 50); do
    run_curl "http://127.0.0.1:$EG_ADMIN/metrics"
    grep -Eq '^tlsgate_outbound_blocked_total\{[^}]*host="www\.google\.com"[^}]*\} 2$' "$CURL_BODY" && break
    sleep 0.1
done
if grep -Eq '^tlsgate_outbound_blocked_total\{[^}]*host="www\.google\.com"[^}]*\} 2$' "$CURL_BODY"; then
    pass "both counted in tlsgate_outbound_blocked_total{host=\"www.google.com\"}"
else
    fail "tlsgate_outbound_blocked_total{host=\"www.google.com\"} not counted"
    grep -a 'outbound_blocked' "$CURL_BODY" | sed 's/^/    /'
fi

# sighup_reloads: how many times the egress gateway logged a reload made by SIGHUP.
sighup_reloads() {
    sed 's/\x1b\[[0-9;]*m//g' "$TMP/egress.log" | grep -c 'configuration reloaded.*trigger="\?sighup'
}

# reload_until DESC CODE ARGS...: `kill -HUP` the egress gateway, then poll
# (3 s at most) until curl ARGS answers CODE; the PID must not change and the
# gateway must log the reload as made by SIGHUP.
reload_until() {
    local desc=$1 want=$2; shift 2
    local i j code ok=no before
    before=$(sighup_reloads)
    echo "  \$ kill -HUP $EG_PID"
    kill -HUP "$EG_PID" 2>/dev/null
    for ((i = 0; i < 30; i++)); do
        alive "$EG_PID" || break
        code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$@" 2>/dev/null)
        if [ "$code" = "$want" ]; then
            ok=yes
            break
        fi
        sleep 0.1
    done
    if [ "$ok" = yes ] && alive "$EG_PID"; then
        for ((j = 0; j < 10; j++)); do
            [ "$(sighup_reloads)" -gt "$before" ] && break
            sleep 0.1
        done
        if [ "$(sighup_reloads)" -le "$before" ]; then
            fail "$desc: HTTP $want, but the egress log shows no reload with trigger=sighup"
            tail -n 10 "$TMP/egress.log" | sed 's/^/    /'
            return 1
        fi
        pass "$desc: HTTP $want $((i / 10)).$((i % 10)) s after SIGHUP (logged trigger=sighup), same PID $EG_PID (no restart)"
        return 0
    fi
    if alive "$EG_PID"; then
        fail "$desc: still HTTP ${code:-000} 3 s after SIGHUP (expected $want)"
        tail -n 10 "$TMP/egress.log" | sed 's/^/    /'
        return 1
    fi
    fail "$desc: SIGHUP ended the egress gateway (pid $EG_PID) instead of reloading it"
    tail -n 20 "$TMP/egress.log" | sed 's/^/    /'
    wait "$EG_PID" 2>/dev/null
    forget_pid "$EG_PID"
    finish
}

say "4. Variation 1 (REGISTRY_ONLY): register $REMOTE with a ServiceEntry, live"
R=(-x "$EGRESS" "http://$REMOTE:8080/hello")
expect_status "before the ServiceEntry: curl -x $EGRESS http://$REMOTE:8080/hello: 502" 502 "${R[@]}" &&
    body_contains "the 502 names $REMOTE" "$REMOTE"
# The tutorial's rest-greeting-remote-mesh-ext (resolution DNS); here the
# service is a process on 127.0.0.1, hence STATIC and targetPort.
cat >>conf/egress.yaml <<EOF
---
kind: ServiceEntry
apiVersion: networking.istio.io/v1alpha3
metadata:
  name: rest-greeting-remote-mesh-ext
spec:
  hosts:
    - $REMOTE
  ports:
    - name: http-8080
      number: 8080
      protocol: HTTP
      targetPort: $REMOTE_PORT
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints:
    - address: 127.0.0.1
EOF
check_config "tlsgate check accepts the egress configuration with the ServiceEntry" --config conf/egress.yaml
expect_status "written but not applied yet (no SIGHUP): still 502" 502 "${R[@]}"
reload_until "ServiceEntry applied" 200 "${R[@]}"
expect_status "after the ServiceEntry: curl -x $EGRESS http://$REMOTE:8080/hello: 200" 200 "${R[@]}" &&
    body_contains "$REMOTE answered" "Hello from rest-greeting-remote"
expect_status "after the ServiceEntry: curl -H 'Host: $REMOTE:8080' $EGRESS/hello: 200" 200 \
    -H "Host: $REMOTE:8080" "$EGRESS/hello"
expect_status "$GREETING still 200 after the reload" 200 -H "Host: $GREETING" "$EGRESS/hello"
expect_status "www.google.com still 502 after the reload" 502 -H "Host: www.google.com" "$EGRESS/"

say "5. The service side is STRICT: only clients with an Acme certificate get in"
S=(--resolve "$GREETING:$SVC_PORT:127.0.0.1")
expect_refused "plain HTTP straight to the service side: refused" "" \
    "${S[@]}" "http://$GREETING:$SVC_PORT/hello"
expect_refused "TLS without a client certificate: refused" "alert|certificate required|handshake failure" \
    --cacert $C/ca/example/ca.crt "${S[@]}" "https://$GREETING:$SVC_PORT/hello"
expect_refused "TLS with a Pirate client certificate: alert unknown ca" "unknown ca" \
    --cacert $C/ca/example/ca.crt --cert $C/clients/bad-partner/tls.crt --key $C/clients/bad-partner/tls.key \
    "${S[@]}" "https://$GREETING:$SVC_PORT/hello"
expect_status "TLS with the Acme client certificate (great-partner): 200" 200 \
    --cacert $C/ca/example/ca.crt "${CLIENT[@]}" "${S[@]}" "https://$GREETING:$SVC_PORT/hello"

say "6. Variation 2 (STRICT): mutual TLS to the plain-HTTP $REMOTE fails, DestinationRule mode DISABLE fixes it"
# A STRICT mesh originates mutual TLS to the external service too; it speaks
# plain HTTP, so the requests "are starting to fail".
cp conf/egress.yaml egress-se.yaml
cat >>conf/egress.yaml <<EOF
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: disable-mtls-rest-greeting-remote-ext
spec:
  host: $REMOTE
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: ../$C/clients/great-partner/tls.crt
      privateKey: ../$C/clients/great-partner/tls.key
      caCertificates: ../$C/ca/example/ca.crt
EOF
check_config "tlsgate check accepts the STRICT (mode MUTUAL) DestinationRule" --config conf/egress.yaml
expect_status "written but not applied yet (no SIGHUP): still 200" 200 "${R[@]}"
reload_until "mutual TLS towards $REMOTE applied" 502 "${R[@]}"
expect_status "STRICT: curl -x $EGRESS http://$REMOTE:8080/hello: 502" 502 "${R[@]}" &&
    body_contains "the 502 names the TLS failure" "upstream_tls_handshake"
# "Create DestinationRule to DISABLE mTLS for the external service communication"
cp egress-se.yaml egress-disable.yaml
cat >>egress-disable.yaml <<EOF
---
apiVersion: "networking.istio.io/v1alpha3"
kind: "DestinationRule"
metadata:
  name: "disable-mtls-rest-greeting-remote-ext"
  namespace: "greetings-client"
spec:
  host: $REMOTE
  trafficPolicy:
    tls:
      mode: DISABLE
EOF
cp egress-disable.yaml conf/egress.yaml
check_config "tlsgate check accepts the DestinationRule mode DISABLE" --config conf/egress.yaml
expect_status "written but not applied yet (no SIGHUP): still 502" 502 "${R[@]}"
reload_until "DestinationRule mode DISABLE applied" 200 "${R[@]}"
expect_status "DISABLE: curl -x $EGRESS http://$REMOTE:8080/hello: 200" 200 "${R[@]}" &&
    body_contains "$REMOTE answered in plain HTTP" "Hello from rest-greeting-remote"
expect_status "$GREETING still 200 over mutual TLS" 200 -H "Host: $GREETING" "$EGRESS/hello"

finish

#!/usr/bin/env bash
# Seed 004 "Lab 10 (Part 5): Secure your services", section "Enable SSL for
# traffic coming in to your cluster (HTTPS)": tlsgate is the ingress gateway
# (conf/seed-004-ingress.yaml) behind an OpenShift Route with TLS termination
# Re-encrypt, whose Destination CA Certificate is the example CA. The router
# is played by a second tlsgate (conf/seed-004-router.yaml) that terminates
# the client's TLS and originates TLS (DestinationRule mode SIMPLE,
# caCertificates = example.com.crt) to the gateway.
#
# Steps:
#   1. the lab's certificates: CA O=example Inc./CN=istio-system.svc, and
#      istio-ingressgateway.istio-system.svc signed by it
#      (secret istio-ingressgateway-certs)
#   2. the gateway serves /productpage over TLS with that certificate
#   3. through the re-encrypting router: https://bookinfo.apps.example.com/productpage -> 200
#   4. a router whose Destination CA is another CA refuses the gateway (502)
#
# Usage: integration/seeds/seed-004.sh   (TLSGATE=path/to/tlsgate to pick a binary)
# Prints PASS/FAIL per step; exits 0 only if every step passed.
source "$(dirname "$0")/lib.sh"

GW_HOST=istio-ingressgateway.istio-system.svc
APP_HOST=bookinfo.apps.example.com

say "Create certs for Router to Ingress Gateway (tlsgate certs)"
cd "$TMP" || exit 1
# openssl req -x509 ... -subj '/O=example Inc./CN=istio-system.svc' -keyout example.com.key -out example.com.crt
tg certs ca --name example --org "example Inc." --cn istio-system.svc --out ca/example >/dev/null || exit 1
# openssl req -out ingGW.csr ... -subj "/CN=istio-ingressgateway.istio-system.svc"; openssl x509 -req ...
# oc create -n istio-system secret tls istio-ingressgateway-certs --key ingGW.key --cert ingGW.crt
tg certs server --ca ca/example --host "$GW_HOST" \
    --credential istio-ingressgateway-certs --credentials-dir credentials >/dev/null || exit 1
# The router's own certificate (the cluster's *.apps wildcard), from another CA.
tg certs ca --name router --org "OpenShift Router" --out ca/router >/dev/null || exit 1
tg certs server --ca ca/router --host "*.apps.example.com" \
    --credential router-certs --credentials-dir credentials >/dev/null || exit 1
# A CA that did not sign the gateway's certificate (a wrong Destination CA).
tg certs ca --name other --org "Other Inc." --out ca/other >/dev/null || exit 1
cp ca/example/ca.crt example.com.crt
find credentials ca -type f | sort | sed 's/^/  /'

say "productpage (python3 -m http.server) and the ingress gateway (tlsgate)"
mkdir -p www && echo "<title>Simple Bookstore App</title>" >www/productpage
start_backend productpage "$TMP/www"
GW_PORT=$(free_port)
GW_ADMIN=$(free_port)
cp "$ROOT/conf/seed-004-ingress.yaml" ingress.yaml
subst ingress.yaml "8443=$GW_PORT" "9080=$BACKEND_PORT" "15021=$GW_ADMIN"
check_config "tlsgate check accepts seed-004-ingress.yaml" --config ingress.yaml --credentials credentials
start_gateway ingress "$GW_ADMIN" --config ingress.yaml --credentials credentials || { fail "ingress gateway ready"; finish; }
pass "ingress gateway ready"

expect_status "the gateway serves its certificate for $GW_HOST (verified with example.com.crt)" 200 \
    -v --cacert example.com.crt --resolve "$GW_HOST:$GW_PORT:127.0.0.1" "https://$GW_HOST:$GW_PORT/productpage" &&
    err_contains "subject CN=istio-ingressgateway.istio-system.svc" "subject: .*CN ?= ?istio-ingressgateway\.istio-system\.svc"
expect_refused "a client that does not trust example.com.crt refuses the gateway" "certificate|verify" \
    --cacert ca/router/ca.crt --resolve "$GW_HOST:$GW_PORT:127.0.0.1" "https://$GW_HOST:$GW_PORT/productpage"

# start_router NAME CA_FILE: the re-encrypting router, with CA_FILE as its
# Destination CA Certificate. Sets R_PORT.
start_router() {
    local name=$1 ca=$2 admin
    R_PORT=$(free_port)
    admin=$(free_port)
    mkdir -p "$name"
    cp "$ROOT/conf/seed-004-router.yaml" "$name/router.yaml"
    cp "$ca" "$name/example.com.crt"
    subst "$name/router.yaml" "443=$R_PORT" "8443=$GW_PORT" "15021=$admin"
    check_config "tlsgate check accepts seed-004-router.yaml ($name)" --config "$name/router.yaml" --credentials credentials
    start_gateway "$name" "$admin" --config "$name/router.yaml" --credentials credentials
}

say "Create a secure Route (Re-encrypt, Destination CA = example.com.crt), played by a second tlsgate"
start_router router example.com.crt || { fail "router ready"; finish; }
pass "router ready"
ROUTER_PID=$GW_PID
ROUTE=(--cacert ca/router/ca.crt --resolve "$APP_HOST:$R_PORT:127.0.0.1")

say "Visit the new HTTPS route (/productpage)"
run_curl "${ROUTE[@]}" "https://$APP_HOST:$R_PORT/productpage"
if [ "$CURL_RC" -eq 0 ] && [ "$CURL_CODE" = 200 ] && grep -q "Simple Bookstore App" "$CURL_BODY"; then
    pass "https://$APP_HOST/productpage through the re-encrypting router: 200"
elif [ "$CURL_CODE" = 502 ] || [ "$CURL_CODE" = 500 ] || [ "$CURL_CODE" = 503 ]; then
    if grep -q "TLS origination is not supported" "$TMP/router.log"; then
        blocked "re-encrypt: the router answered $CURL_CODE because tlsgate does not originate TLS to upstreams yet (DestinationRule tls.mode SIMPLE): 'TLS origination is not supported yet' in its log"
    else
        fail "re-encrypt: the router answered $CURL_CODE instead of 200"
        echo "    router log (last lines):"
        tail -n 15 "$TMP/router.log" | sed 's/^/    /'
    fi
    curl_detail
else
    fail "re-encrypt: expected 200 through the router"
    curl_detail
fi
stop_pid "$ROUTER_PID"

say "A Route whose Destination CA did not sign the gateway's certificate: the router refuses the gateway"
start_router router-wrong-ca ca/other/ca.crt || { fail "router (wrong CA) ready"; finish; }
pass "router (wrong CA) ready"
run_curl --cacert ca/router/ca.crt --resolve "$APP_HOST:$R_PORT:127.0.0.1" "https://$APP_HOST:$R_PORT/productpage"
if [ "$CURL_CODE" = 502 ] && ! grep -q "TLS origination is not supported" "$TMP/router-wrong-ca.log"; then
    pass "wrong Destination CA: 502, the gateway's certificate was not accepted"
elif grep -q "TLS origination is not supported" "$TMP/router-wrong-ca.log"; then
    blocked "re-encrypt with a wrong Destination CA: cannot be checked until tlsgate originates TLS (router answered $CURL_CODE)"
else
    fail "wrong Destination CA: expected 502"
    curl_detail
fi

finish

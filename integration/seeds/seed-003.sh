#!/usr/bin/env bash
# Seed 003 "Secure microservices with strict mTLS", with tlsgate on the
# Web-API NodePort: TASK 1 permissive (conf/seed-003-permissive.yaml), then
# TASK 2 STRICT (conf/seed-003-strict.yaml).
#
# The tutorial: `curl -i http://$workerip:$nodeport/articles -H
# "Authorization: Bearer $access_token"` gets 200 in permissive mode; after
# `kubectl apply -f mtls.yaml` the same command fails (`curl: (56) Recv
# failure`) and only mesh workloads (the Istio ingress, with a mesh
# certificate) reach Web-API.
#
# Usage: integration/seeds/seed-003.sh   (TLSGATE=path/to/tlsgate to pick a binary)
# Prints PASS/FAIL per step; exits 0 only if every step passed.
source "$(dirname "$0")/lib.sh"

HOST=web-api.default.svc.cluster.local
access_token="eyJhbGciOiJSUzI1NiJ9.seed-003.test"

say "Certificates: the mesh CA, web-api's credential, the ingress gateway's certificate (tlsgate certs)"
cd "$TMP" || exit 1
tg certs ca --name cluster.local --org "Mesh CA" --out ca/mesh >/dev/null || exit 1
tg certs server --ca ca/mesh --host "$HOST" --host web-api.default --client-ca ca/mesh \
    --credential web-api-credential --credentials-dir credentials >/dev/null || exit 1
tg certs client --ca ca/mesh --name istio-ingressgateway \
    --spiffe spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account \
    --out clients/istio-ingressgateway >/dev/null || exit 1
find credentials clients ca -type f | sort | sed 's/^/  /'

say "web-api (python3 -m http.server serving /articles)"
mkdir -p www
cat >www/articles <<'JSON'
[{"authorBlog":"","authorTwitter":"","title":"Blue Cloud Mirror — (Don’t) Open The Doors!","url":"https://haralduebele.blog/2019/02/17/blue-cloud-mirror-dont-open-the-doors/"}]
JSON
start_backend web-api "$TMP/www"
nodeport=$(free_port)
workerip=127.0.0.1

say "TASK 1: permissive mode, plain HTTP on the NodePort"
ADMIN=$(free_port)
cp "$ROOT/conf/seed-003-permissive.yaml" permissive.yaml
subst permissive.yaml "30080=$nodeport" "8081=$BACKEND_PORT" "15021=$ADMIN"
check_config "tlsgate check accepts permissive.yaml" --config permissive.yaml
start_gateway permissive "$ADMIN" --config permissive.yaml || { fail "permissive gateway ready"; finish; }
pass "permissive gateway ready"
expect_status "curl -i http://\$workerip:\$nodeport/articles (permissive)" 200 \
    -i "http://$workerip:$nodeport/articles" -H "Authorization: Bearer $access_token" &&
    body_contains "the articles came back" "Blue Cloud Mirror"

say "TASK 2: kubectl apply -f mtls.yaml (STRICT): the NodePort becomes TLS-only with client certificates"
# A listener that changes from HTTP to HTTPS is a new socket: tlsgate is
# restarted with the STRICT configuration (as a pod would be on a new ConfigMap).
stop_pid "$GW_PID"
ADMIN=$(free_port)
cp "$ROOT/conf/seed-003-strict.yaml" strict.yaml
subst strict.yaml "30080=$nodeport" "8081=$BACKEND_PORT" "15021=$ADMIN"
check_config "tlsgate check accepts strict.yaml" --config strict.yaml --credentials credentials
start_gateway strict "$ADMIN" --config strict.yaml --credentials credentials || { fail "STRICT gateway ready"; finish; }
pass "STRICT gateway ready"

expect_refused "curl -i http://\$workerip:\$nodeport/articles (STRICT): refused" "" \
    -i "http://$workerip:$nodeport/articles" -H "Authorization: Bearer $access_token"
expect_refused "plain HTTP with the service's host name: refused" "" \
    -i --resolve "$HOST:$nodeport:127.0.0.1" "http://$HOST:$nodeport/articles" \
    -H "Authorization: Bearer $access_token"
expect_refused "TLS without a mesh certificate: refused" "alert|certificate required|handshake failure" \
    -i --cacert ca/mesh/ca.crt --resolve "$HOST:$nodeport:127.0.0.1" "https://$HOST:$nodeport/articles" \
    -H "Authorization: Bearer $access_token"
expect_status "the ingress gateway (mesh certificate) gets the articles over mutual TLS" 200 \
    -i --cacert ca/mesh/ca.crt \
    --cert clients/istio-ingressgateway/tls.crt --key clients/istio-ingressgateway/tls.key \
    --resolve "$HOST:$nodeport:127.0.0.1" "https://$HOST:$nodeport/articles" \
    -H "Authorization: Bearer $access_token" &&
    body_contains "the articles came back over mutual TLS" "Blue Cloud Mirror"

finish

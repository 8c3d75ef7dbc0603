#!/usr/bin/env bash
# Seed 000 "Secure Service with Mutual TLS", sections "Istio Ingress Gateway
# with TLS" and "... with mTLS", with tlsgate as the ingress gateway
# (conf/seed-000-ingress.yaml: frontend.example.com SIMPLE, partner.example.com
# MUTUAL with the Acme CA).
#
# Every curl of those sections, in order:
#   1. TLS (SIMPLE): curl -kv https://$GATEWAY_URL -> 200, issuer example Inc.
#   2. mTLS without a client certificate -> handshake refused
#   3. mTLS with the Acme client (great-partner) -> 200
#   4. mTLS with the Pirate client (bad-partner) -> `tlsv1 alert unknown ca`
#   5. trust Pirate: ca.crt = acme + pirate, replaced the way `oc replace
#      secret` does it (the kubelet swaps the Secret volume's ..data symlink),
#      then `kill -HUP`; the Pirate client must get 200 within 3 s
#   6. Pirate -> 200, and Acme still -> 200
#
# Usage: integration/seeds/seed-000.sh   (TLSGATE=path/to/tlsgate to pick a binary)
# Prints PASS/FAIL per step; exits 0 only if every step passed.
source "$(dirname "$0")/lib.sh"

FRONTEND=frontend.example.com
PARTNER=partner.example.com

say "Certificates, as in the tutorial, made with tlsgate certs"
cd "$TMP" || exit 1
# "Create Root CA and Private Key" / "Create Certificate and Private Key for $CN"
tg certs ca --name example --org "example Inc." --cn example.com --out ca/example >/dev/null || exit 1
tg certs server --ca ca/example --host "$FRONTEND" --org "Great Department" \
    --credential frontend-credential --credentials-dir credentials >/dev/null || exit 1
tg certs ca --name acme --org "Acme Inc." --cn acme.com --out ca/acme >/dev/null || exit 1
tg certs client --ca ca/acme --name great-partner --cn great-partner.apps.acme.com \
    --org "Great Department" --out clients/great-partner >/dev/null || exit 1
# "Update frontend-credential secret" with ca.crt = the Acme CA (MUTUAL).
tg certs server --ca ca/example --host "$PARTNER" --org "Great Department" --client-ca ca/acme \
    --credential partner-credential --credentials-dir credentials >/dev/null || exit 1
tg certs ca --name pirate --org "Pirate Inc." --cn pirate.com --out ca/pirate >/dev/null || exit 1
tg certs client --ca ca/pirate --name bad-partner --cn bad-partner.apps.pirate.com \
    --org "Bad Department" --out clients/bad-partner >/dev/null || exit 1
# partner-credential is laid out as a mounted Secret (..data symlink swap on update).
secret_volume credentials/partner-credential
find credentials clients ca | sort | sed 's/^/  /'

say "frontend (python3 -m http.server) and tlsgate with conf/seed-000-ingress.yaml"
mkdir -p www && echo "Frontend version: 1.0.0 => [Backend: http://backend:8080, Response: 200]" >www/index.html
start_backend frontend "$TMP/www"
PORT=$(free_port)
ADMIN=$(free_port)
cp "$ROOT/conf/seed-000-ingress.yaml" seed-000.yaml
# backend v1/v2 (/backend) are not part of these curls: free ports, nothing listening.
subst seed-000.yaml "8443=$PORT" "8080=$BACKEND_PORT" "8081=$(free_port)" "8082=$(free_port)" "15021=$ADMIN"
check_config "tlsgate check accepts seed-000-ingress.yaml" --config seed-000.yaml --credentials credentials
GW=(--config seed-000.yaml --credentials credentials)
start_gateway gateway "$ADMIN" "${GW[@]}" || { fail "gateway ready"; finish; }
pass "gateway ready"

F=(--resolve "$FRONTEND:$PORT:127.0.0.1")
P=(--resolve "$PARTNER:$PORT:127.0.0.1")
ACME=(--cacert ca/acme/ca.crt --cert clients/great-partner/tls.crt --key clients/great-partner/tls.key)
PIRATE=(--cacert ca/pirate/ca.crt --cert clients/bad-partner/tls.crt --key clients/bad-partner/tls.key)

say "Istio Ingress Gateway with TLS: curl -kv https://\$GATEWAY_URL"
expect_status "SIMPLE: curl -kv https://$FRONTEND" 200 -kv "${F[@]}" "https://$FRONTEND:$PORT/" &&
    err_contains "server certificate issued by the example CA" "issuer: O ?= ?example Inc\.[;,] ?CN ?= ?example\.com" &&
    body_contains "the frontend answered" "Frontend version: 1.0.0"
expect_status "SIMPLE, verified with the example CA (no -k)" 200 \
    --cacert ca/example/ca.crt "${F[@]}" "https://$FRONTEND:$PORT/"

say "Istio Ingress Gateway with mTLS"
expect_refused "cURL without client certificate: refused" "handshake failure|certificate required" \
    -k "${P[@]}" "https://$PARTNER:$PORT/"
expect_status "cURL with Acme Inc certificate: 200" 200 -kv "${ACME[@]}" "${P[@]}" "https://$PARTNER:$PORT/" &&
    body_contains "the frontend answered the Acme partner" "Frontend version: 1.0.0"
expect_refused "cURL with Pirate Inc certificate: alert unknown ca" "unknown ca" \
    -k "${PIRATE[@]}" "${P[@]}" "https://$PARTNER:$PORT/"

say "Update frontend gateway to trust Pirate Inc (ca.crt = acme + pirate, Secret volume updated in place)"
cat ca/acme/ca.crt >trusted.crt
cat ca/pirate/ca.crt >>trusted.crt
secret_update credentials/partner-credential ca.crt=trusted.crt
echo "  ca.crt now holds $(grep -c 'BEGIN CERTIFICATE' credentials/partner-credential/ca.crt) CA certificates"
echo "  \$ kill -HUP $GW_PID"
kill -HUP "$GW_PID" 2>/dev/null
reloaded=no
for ((i = 0; i < 30; i++)); do
    alive "$GW_PID" || break
    code=$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "${PIRATE[@]}" "${P[@]}" "https://$PARTNER:$PORT/" 2>/dev/null)
    if [ "$code" = 200 ]; then
        reloaded=yes
        break
    fi
    sleep 0.1
done
if [ "$reloaded" = yes ]; then
    pass "hot reload: the Pirate client is trusted $((i / 10)).$((i % 10)) s after SIGHUP, without a restart"
else
    if alive "$GW_PID"; then
        blocked "hot reload: the Pirate client is still refused 3 s after the Secret update and SIGHUP (credentials hot reload not available yet)"
        stop_pid "$GW_PID"
    else
        wait "$GW_PID" 2>/dev/null
        forget_pid "$GW_PID"
        blocked "hot reload: SIGHUP ended tlsgate instead of reloading (no SIGHUP handler yet)"
    fi
    echo "  *** HOT RELOAD IS NOT AVAILABLE: RESTARTING tlsgate to check the rest of the tutorial ***"
    echo "  *** (this run fails because of it; a restart is not what the tutorial's oc replace does) ***"
    ADMIN=$(free_port)
    start_gateway gateway-restarted "$ADMIN" "${GW[@]}" || { fail "restarted gateway ready"; finish; }
fi

say "Test with Pirate Inc certificate, recheck Acme Inc"
expect_status "cURL with Pirate Inc certificate: 200" 200 -k "${PIRATE[@]}" "${P[@]}" "https://$PARTNER:$PORT/"
expect_status "Recheck that Acme Inc can access frontend app" 200 -kv "${ACME[@]}" "${P[@]}" "https://$PARTNER:$PORT/"
expect_status "SIMPLE frontend unchanged" 200 --cacert ca/example/ca.crt "${F[@]}" "https://$FRONTEND:$PORT/"

finish

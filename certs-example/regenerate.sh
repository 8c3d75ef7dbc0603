#!/usr/bin/env bash
# Regenerates every file of certs-example/ (new keys, new serials) with
# `tlsgate certs`. Uses $TLSGATE when set (a built binary), else `cargo run`.
# CAs are valid 20 years and leaves 10, so the examples do not rot.
set -euo pipefail
cd "$(dirname "$0")"

if [ -n "${TLSGATE:-}" ]; then
    tg() { "$TLSGATE" "$@"; }
else
    tg() { cargo run -q -p tlsgate -- "$@"; }
fi

CA_DAYS=7300
LEAF_DAYS=3650

tg certs ca --name example --org "example Inc." --cn example.com --out ca/example --days $CA_DAYS --force
tg certs ca --name acme --org "Acme Inc." --cn acme.com --out ca/acme --days $CA_DAYS --force
tg certs ca --name pirate --org "Pirate Inc." --cn pirate.com --out ca/pirate --days $CA_DAYS --force

# SIMPLE: server certificate only.
tg certs server --ca ca/example --host frontend.example.com \
    --credential frontend-credential --credentials-dir credentials --days $LEAF_DAYS --force
# MUTUAL: server certificate plus ca.crt = the Acme CA that client certificates must chain to.
tg certs server --ca ca/example --host partner.example.com --client-ca ca/acme \
    --credential partner-credential --credentials-dir credentials --days $LEAF_DAYS --force

# Clients: one trusted (Acme), one that nobody trusts (Pirate).
tg certs client --ca ca/acme --name great-partner --cn great-partner.apps.acme.com \
    --org "Great Department" --spiffe spiffe://acme.com/great-partner \
    --out clients/great-partner --days $LEAF_DAYS --force
tg certs client --ca ca/pirate --name bad-partner --cn bad-partner.apps.pirate.com \
    --org "Bad Department" --out clients/bad-partner --days $LEAF_DAYS --force

if command -v openssl >/dev/null; then
    openssl verify -CAfile ca/example/ca.crt credentials/frontend-credential/tls.crt credentials/partner-credential/tls.crt
    openssl verify -CAfile ca/acme/ca.crt clients/great-partner/tls.crt
    openssl verify -CAfile ca/pirate/ca.crt clients/bad-partner/tls.crt
fi

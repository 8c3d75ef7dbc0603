# The two set-up commands of the README. Both install what a fresh Debian
# machine lacks (scripts/install-deps: cmake, curl, openssl, perl, python3).
.PHONY: run test deps

# The gateway on its embedded default configuration (127.0.0.1:8443).
run: deps
	cargo run --release --locked -p tlsgate -- run

# Every test: unit tests and the acceptance suite (real binary, curl, openssl),
# then the acceptance suite again with curl speaking HTTP/1.1 unless a test
# asks otherwise: curl picks h2 by ALPN, and HTTP/1.1 GETs take tlsgate's
# direct path, so both request paths pass the same tests. Last, the suite
# once more with every gateway's listeners on OpenSSL (`--tls-library
# openssl`; rustls is the default). The later passes select the acceptance
# suite as `--workspace --test '*'`, not `-p tlsgate-integration`: the same
# feature set as the first pass, so its test binaries are reused, not built
# (and stored) a second time.
test: deps
	cargo test --workspace --locked
	bash scripts/test-http1
	TLSGATE_TEST_TLS_LIBRARY=openssl cargo test --locked --workspace --test '*'

deps:
	@bash scripts/install-deps

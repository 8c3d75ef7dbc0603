# tlsgate container image.
#
#   docker build -t tlsgate:0.1.0 .
#
# The build stage runs the README's release build, `cargo build --release
# --locked -p tlsgate`, with what a fresh Debian machine lacks for it (cmake
# for Pingora's zlib-ng; perl and make for the vendored OpenSSL), as .ci/run
# installs them. The runtime stage is Debian slim with the binary, CA
# certificates, curl (for HEALTHCHECK) and a non-root user.
#
# Layout (the same in Kubernetes, see conf/kubernetes/):
#   /etc/tlsgate               configuration: *.yaml (Istio YAML + GatewayRuntime)
#   /etc/tlsgate/credentials   credentialsDir: one folder per credentialName
# Ports: 8443 HTTPS, 8080 HTTP, 15021 admin (/healthz/ready, /metrics).
# The configuration must bind what the ports publish: Gateway servers without
# `bind` (0.0.0.0) and `admin: 0.0.0.0:15021` in GatewayRuntime.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake perl make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tlsgate \
 && install -m 0755 target/release/tlsgate /usr/local/bin/tlsgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tlsgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tlsgate \
 && mkdir -p /etc/tlsgate/credentials
COPY --from=build /usr/local/bin/tlsgate /usr/local/bin/tlsgate
USER 10001:10001
EXPOSE 8443 8080 15021
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS --max-time 2 http://127.0.0.1:15021/healthz/ready || exit 1
ENTRYPOINT ["tlsgate"]
CMD ["run", "--config", "/etc/tlsgate"]

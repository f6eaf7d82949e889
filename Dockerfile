# glm-proxy: build the release binary, then ship it alone in a slim image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/glm-proxy

FROM debian:bookworm-slim
# ca-certificates: the system roots for upstream TLS; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app glm \
    && mkdir -p /app/data /app/logs \
    && chown -R glm /app
COPY --from=build /src/target/release/glm-proxy /usr/local/bin/glm-proxy
WORKDIR /app
USER glm
ENV HOST=0.0.0.0 \
    PORT=18080 \
    INCOMING_KEY_DB=/app/data/incoming_keys.db \
    LOG_DIR=/app/logs
EXPOSE 18080
VOLUME ["/app/data", "/app/logs"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:18080/health || exit 1
STOPSIGNAL SIGTERM
CMD ["glm-proxy", "serve"]

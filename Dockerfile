# glm-proxy: build the release binary, then ship it alone in a slim image.
#
# The Rust image is pinned, so a rebuild uses the same compiler (Cargo.toml's rust-version is
# the oldest that works). It has the C compiler and make that SQLite and jemalloc need.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The dependencies first, in a layer of their own, built against stub sources: an edit to the
# proxy's source then rebuilds the proxy alone, not the two hundred crates under it.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY migrations_postgres ./migrations_postgres
# COPY keeps the files' times, which can be older than the stub build: touch them so cargo
# sees that the sources changed.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && strip target/release/glm-proxy

FROM debian:bookworm-slim
# ca-certificates: the system roots for upstream TLS. The health check is the binary itself.
# The user is a number (10001), which Kubernetes' runAsNonRoot can check; its folders are its
# own and private, and named volumes mounted on them start with that owner.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 glm \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home glm \
    && mkdir -p /app/data /app/logs \
    && chown -R 10001:10001 /app \
    && chmod 0700 /app/data /app/logs
COPY --from=build /src/target/release/glm-proxy /usr/local/bin/glm-proxy
WORKDIR /app
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=18080 \
    INCOMING_KEY_DB=/app/data/incoming_keys.db \
    LOG_DIR=/app/logs
EXPOSE 18080
VOLUME ["/app/data", "/app/logs"]
# `glm-proxy health` asks /health at HOST:PORT, so a PORT set in .env is the one checked.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["glm-proxy", "health"]
STOPSIGNAL SIGTERM
CMD ["glm-proxy", "serve"]

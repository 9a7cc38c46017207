# authbridge container image: build in a full Rust image, run in a slim Debian
# with a non-root user. Config and mappings are copied in; mount your own over
# /app/config and /app/mappings, and pass secrets as env vars or files.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY mappings ./mappings
COPY config ./config
RUN cargo build --release --locked --bin authbridge

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin authbridge
WORKDIR /app
COPY --from=build /src/target/release/authbridge /usr/local/bin/authbridge
COPY config ./config
COPY mappings ./mappings
USER 10001
# One JSON object per line: what log collectors parse. Override with
# AUTHBRIDGE__TELEMETRY__LOG_FORMAT=pretty for a human at a terminal.
ENV AUTHBRIDGE__TELEMETRY__LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["authbridge", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["authbridge"]
CMD ["serve"]

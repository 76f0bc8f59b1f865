# syntax=docker/dockerfile:1
# Build stage: compiles the release binary (SQLite and libpq are bundled, nothing to install).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Debian's security updates replace pinned versions; the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev make perl \
    && rm -rf /var/lib/apt/lists/*
# Everything the build reads: the manifest names benches/dispatch.rs, askama.toml tells
# askama where the templates are. `.ci/docker-context-check.sh` builds from exactly these.
COPY Cargo.toml Cargo.lock build.rs askama.toml ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin closeloop

# Runtime stage: a small Debian with CA certificates and an unprivileged user.
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/closeloop --create-home closeloop
COPY --from=build /src/target/release/closeloop /usr/local/bin/closeloop
USER 10001
WORKDIR /var/lib/closeloop
# Set PUBLIC_URL to the address customers reach (e.g. https://surveys.example.com): it is the
# base of every link put in an email. Set SMTP_URL to send mail instead of writing .eml files.
ENV BIND_ADDR=0.0.0.0:8080 \
    PUBLIC_URL=http://localhost:8080 \
    DATABASE_URL=sqlite:///var/lib/closeloop/closeloop.db \
    OUTBOX_DIR=/var/lib/closeloop/outbox
EXPOSE 8080
VOLUME ["/var/lib/closeloop"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/closeloop", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/closeloop"]
CMD ["serve"]

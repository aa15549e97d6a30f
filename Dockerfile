# The `sluice` binary in a small image (used by compose.yaml).
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p sluice --bin sluice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl chromium \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY deploy/sluice/sluice.toml /etc/sluice/sluice.toml
# The screenshots and backups (trading.screenshots_dir, backups_dir), owned
# by the user the process runs as, readable by no one else.
RUN mkdir -p /var/lib/sluice/screenshots /var/lib/sluice/backups \
 && chown -R nobody:nogroup /var/lib/sluice \
 && chmod -R 0700 /var/lib/sluice
ENV SLUICE_CONFIG=/etc/sluice/sluice.toml SLUICE_LOG_FORMAT=json
USER nobody
ENTRYPOINT ["sluice"]
CMD ["serve", "--listen", "0.0.0.0:8080"]

# One image with every Flotilla binary (the six workers, the `flotilla` CLI and examples/ping),
# non-root, on Debian slim. Each Deployment or compose service picks its binary as the command.
#   docker build -t ghcr.io/flotilla-dev/flotilla:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p source-listener -p builder-trigger -p env-manager -p sync-watcher \
      -p canary-analyzer -p reaper -p flotilla -p ping \
 && mkdir /out \
 && cp target/release/source-listener target/release/builder-trigger \
       target/release/env-manager target/release/sync-watcher \
       target/release/canary-analyzer target/release/reaper \
       target/release/flotilla target/release/ping /out/

FROM debian:bookworm-slim
# TLS roots for HTTPS remotes and APIs, libssl for libgit2's HTTPS, git for the command backend's
# checkouts, tzdata for hibernation windows in a time zone.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 git tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 flotilla \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin flotilla \
 && mkdir -p /var/lib/flotilla && chown 65532:65532 /var/lib/flotilla
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
ENV FLOTILLA_HTTP_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
CMD ["flotilla", "--help"]

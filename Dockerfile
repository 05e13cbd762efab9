# Multi-stage build of the `basketry` binary.
#   docker build -t basketry .
#   docker run -p 8080:8080 -v basketry-data:/var/lib/basketry basketry
# With no configuration the container serves everything on :8080 with
# embedded SQLite files under /var/lib/basketry (a volume).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin basketry

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/basketry basketry \
 && mkdir -p /var/lib/basketry && chown basketry /var/lib/basketry
COPY --from=build /src/target/release/basketry /usr/local/bin/basketry
USER basketry
WORKDIR /var/lib/basketry
ENV BASKETRY_BIND=0.0.0.0:8080 \
    BASKETRY_DATA_DIR=/var/lib/basketry \
    BASKETRY_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/var/lib/basketry"]
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["basketry"]
CMD ["serve"]

# kafka-ws-bridge container image.
# Written for Docker; no Docker engine runs on the project's build machines, so this file and
# docker-compose.yml are checked by tests/deploy.rs (paths, ports, config) but not built there.
#
#   docker build -t kafka-ws-bridge .
#   docker run -p 8080:8080 -p 9464:9464 \
#     -v $PWD/deploy/bridge.yaml:/etc/kafka-ws-bridge/bridge.yaml:ro kafka-ws-bridge

FROM rust:1-bookworm AS build
WORKDIR /src
# librdkafka is built from the rdkafka crate's bundled sources: it needs a C toolchain, make,
# perl and the OpenSSL/zlib headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential perl libssl-dev zlib1g-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
# The whole workspace (see .dockerignore): the bench crate is a workspace member, and the demo
# page and JS client are compiled into the binary.
COPY . .
RUN cargo build --release --locked -p kafka-ws-bridge \
 && strip target/release/kafka-ws-bridge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home bridge
COPY --from=build /src/target/release/kafka-ws-bridge /usr/local/bin/kafka-ws-bridge
COPY bridge.yaml /etc/kafka-ws-bridge/bridge.yaml
USER 10001
# WebSocket/HTTP (server.listen) and metrics/health (metrics.listen).
EXPOSE 8080 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENV BRIDGE_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/kafka-ws-bridge"]
CMD ["run", "--config", "/etc/kafka-ws-bridge/bridge.yaml"]

# One image for both binaries: compose runs it as `replica` or `coordinator`.
# Builds from source on debian:bookworm-slim (docker/base-image.sh makes that
# image locally where no registry answers); needs only Debian's package
# mirror. The dashboard's d3 comes from the build context (npm ci on the
# host, see docker/prepare.sh), never from the npm registry.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make cmake pkg-config \
      libuv1-dev libprotobuf-c-dev protobuf-c-compiler libcivetweb-dev libcjson-dev \
      libsodium-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY common common
COPY replica replica
COPY coordinator coordinator
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DREPLICACAO_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" \
 && cmake --install /build --strip

# libssl3: the coordinator's token digests (libcrypto), and civetweb's HTTPS
# (--tls-cert), which opens OpenSSL at run time through the two stand-in
# libraries under /usr/local/lib/replicacao (coordinator/sslcompat.c), so
# the libssl.so links of libssl-dev are not needed here.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libprotobuf-c1 libcivetweb1 libcjson1 libsodium23 \
      libssl3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --system --uid 10001 --home-dir /var/lib/replicacao --shell /usr/sbin/nologin replicacao \
 && mkdir -p /var/lib/replicacao /var/lib/replicacao-secrets \
 && chown replicacao:replicacao /var/lib/replicacao /var/lib/replicacao-secrets \
 && chmod 0700 /var/lib/replicacao-secrets
COPY --from=build /usr/local/bin/replica /usr/local/bin/replctl /usr/local/bin/coordinator /usr/local/bin/
COPY --from=build /usr/local/lib/replicacao /usr/local/lib/replicacao
COPY dashboard /usr/local/share/replicacao/dashboard
COPY docker/entrypoint.sh /usr/local/bin/replicacao-entrypoint
USER replicacao
WORKDIR /var/lib/replicacao
ENV REPLICA_DATA_DIR=/var/lib/replicacao/data
EXPOSE 5000 8080
# The replica's check: healthy while it is primary or hears one, so a
# cluster that lost its majority (no primary can be elected) shows as
# unhealthy. The coordinator's is set in docker-compose.yml.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s \
  CMD ["replctl", "-a", "127.0.0.1:5000", "-t", "2000", "ready"]
ENTRYPOINT ["replicacao-entrypoint"]
CMD ["replica"]

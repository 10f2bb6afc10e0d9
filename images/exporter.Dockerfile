# kvinit-exporter: Debian's prometheus-redis-exporter, FROM scratch, reading the Redis password from the Docker
# secret /run/secrets/redis_password (images/exporter-entry.c). Built by `make image`; see images/README.md.
FROM scratch

ADD rootfs.tar /

ENV PATH=/usr/bin
EXPOSE 9121
# With no shell, curl or health subcommand in the image there is nothing to probe with: Prometheus' own scrape
# status (`up`) is the exporter's health check.
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
# Runs as root only to read the secret, then drops to nobody (65534) and execs the exporter.
ENTRYPOINT ["/usr/bin/exporter-entry"]
CMD []

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
ARG EXPORTER_VERSION=unknown
LABEL org.opencontainers.image.title="kvinit-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the kvinit Redis Cluster (Debian's prometheus-redis-exporter ${EXPORTER_VERSION}), password from a Docker secret" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

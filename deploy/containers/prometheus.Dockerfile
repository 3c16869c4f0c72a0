# Prometheus 2.42 from Debian's package, for deploy/compose.yaml where prom/prometheus:v2.42.0
# cannot be pulled (no registry is reachable where pcpsim is developed; deploy/containers/build.sh
# builds this as localhost/pcpsim-prometheus:2.42). Used like the upstream image: the entry point
# is the prometheus binary, the Compose service's `command` gives its flags, data in /prometheus.
# Only the binary (linked to libc alone) and its console files are kept: the package's
# dependencies for the web UI (moment-timezone's data, ~220 MB) are left in the first stage.
ARG BASE=localhost/debian-py:bookworm
FROM ${BASE} AS package
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

FROM ${BASE}
COPY --from=package /usr/bin/prometheus /usr/bin/prometheus
COPY --from=package /usr/share/prometheus /usr/share/prometheus
RUN groupadd --system prometheus \
    && useradd --system --gid prometheus --no-create-home --home-dir /prometheus --shell /usr/sbin/nologin prometheus \
    && install -d -o prometheus -g prometheus /prometheus /etc/prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

# Prometheus 2.42 from Debian's package, for deploy/compose.yaml where prom/prometheus:v2.42.0
# cannot be pulled (no registry is reachable where pcpsim is developed; deploy/containers/build.sh
# builds this as localhost/pcpsim-prometheus:2.42). Used like the upstream image: the entry point
# is the prometheus binary, the Compose service's `command` gives its flags, data in /prometheus.
ARG BASE=localhost/debian-py:bookworm
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && rm -rf /usr/share/doc /usr/share/man \
    && install -d -o prometheus -g prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

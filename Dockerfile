# syntax=docker/dockerfile:1
# probed: a slim, non-root image. Build: docker build -t probed .
# Mount check files at /etc/probed/checks.d and drop-in plugins at /etc/probed/plugins.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY probed ./probed
# DL3013: this installs the project itself from the build context; its dependency ranges are
# in pyproject.toml (pin them with a constraints file in your own build if you need to).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --prefix=/install ".[all]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="probed" \
      org.opencontainers.image.description="Pluggable health-check and synthetic-monitoring daemon" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /install /usr/local
RUN groupadd --system --gid 10001 probed \
    && useradd --system --uid 10001 --gid probed --home-dir /nonexistent --shell /usr/sbin/nologin probed \
    && mkdir -p /etc/probed/checks.d /etc/probed/plugins
COPY checks.d/host.yaml /etc/probed/checks.d/host.yaml
ENV PROBED_CHECKS_DIR=/etc/probed/checks.d \
    PROBED_PLUGINS_DIR=/etc/probed/plugins \
    PROBED_LISTEN=0.0.0.0:9333 \
    PROBED_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9333
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9333/health/live', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["probed"]
CMD ["run"]

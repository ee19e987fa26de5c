# syntax=docker/dockerfile:1
# probed: a slim, non-root image.
#
# Build and publish under the name the Kubernetes manifests use (put your registry there and
# in their `image:`), from the repository root:
#   docker build -t registry.example.com/probed:0.1.0 .
#   docker push registry.example.com/probed:0.1.0
#
# Run: with no arguments it runs probed's embedded host checks (host-disk-root, host-memory,
# host-cpu). For your own checks, mount them and name the directory:
#   docker run -p 9333:9333 -v "$PWD/checks.d:/etc/probed/checks.d:ro" \
#     registry.example.com/probed:0.1.0 run --checks-dir /etc/probed/checks.d
# The repository's file_age plugin, which checks.d/backups.yaml uses, is in the image at
# /etc/probed/plugins/file_age.py: the same layout as the systemd install and the
# contrib/environments files (PROBED_PLUGINS_DIR=/etc/probed/plugins). Mounting your own
# plugins over /etc/probed/plugins hides it: copy file_age.py beside them if you use it.
# tests/contrib/test_image_layout.py builds this layout outside Docker and runs these commands.

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
COPY plugins/file_age.py /etc/probed/plugins/file_age.py
# No PROBED_CHECKS_DIR: without --checks-dir probed runs its embedded host checks.
ENV PROBED_PLUGINS_DIR=/etc/probed/plugins \
    PROBED_LISTEN=0.0.0.0:9333 \
    PROBED_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9333
# The health-only listener when PROBED_HEALTH_LISTEN is set (a --web-config puts 9333 behind TLS
# and auth), else the main one.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = (os.environ.get('PROBED_HEALTH_LISTEN') or os.environ.get('PROBED_LISTEN') or ':9333').rsplit(':', 1)[1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health/live', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["probed"]
CMD ["run"]

# hashsvc as a container: granian via `hashsvc serve`, as an unprivileged user, data folder on a volume.
#
#   docker build -t hashsvc .                       # FROM debian:bookworm-slim (Python 3.11, like the project)
#   docker build -t hashsvc --build-arg BASE_IMAGE=local/debian:bookworm-mmdebstrap .
#                                                   # the same Debian, made locally (scripts/container_base.sh)
# See docs/container.md for compose, the admin key and the smoke test.

ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: compile pdqhash (PyPI ships it only as source) and install hashsvc into a venv ----
FROM ${BASE_IMAGE} AS build
# A PEM bundle to trust while downloading from PyPI, for builds behind a TLS-inspecting proxy. Only this
# stage sees it; the image that runs never trusts it.
ARG EXTRA_CA_CERT=
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN if [ -n "$EXTRA_CA_CERT" ]; then \
      printf '%s\n' "$EXTRA_CA_CERT" > /usr/local/share/ca-certificates/build-extra.crt && update-ca-certificates; \
    fi
RUN python3 -m venv /opt/hashsvc
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a change to the code does not download them again.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/hashsvc/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY hashsvc ./hashsvc
RUN /opt/hashsvc/bin/pip install --no-deps . \
 && /opt/hashsvc/bin/python -c 'import faiss, numba, pdqhash, pillow_heif, psycopg, granian'
# Compile the index's numba kernels now, the same way each serving process warms up before it reports ready.
# The entrypoint copies this cache to NUMBA_CACHE_DIR (a writable /tmp); without it every container start
# compiles them again. numba keys its cache by CPU: on another CPU model it compiles once more, correctly.
# Run from / so that the installed package is imported (numba keys its cache by the source file's path too).
WORKDIR /
RUN NUMBA_CACHE_DIR=/opt/hashsvc/numba-cache /opt/hashsvc/bin/python -c \
      'from hashsvc.hashes import ALGORITHMS; from hashsvc.service.live_index import _warm_up; _warm_up({a.bits for a in ALGORITHMS.values()})'

# ---- runtime: Python and the venv; no compiler, no pip cache, no build CA ----
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libstdc++6 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 hashsvc \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin hashsvc \
 && install -d -o hashsvc -g hashsvc -m 0700 /var/lib/hashsvc
COPY --from=build /opt/hashsvc /opt/hashsvc
COPY deploy/container-entrypoint.sh /usr/local/bin/hashsvc-entrypoint
COPY deploy/container-healthcheck /usr/local/bin/hashsvc-healthcheck
# The settings hashsvc reads are HASHSVC_* (README "Configuration"). numba compiles the index kernels at the
# first start and caches them; matplotlib wants a config folder. Both go to /tmp, so the root file system can
# be mounted read-only (compose.yaml does).
ENV PATH=/opt/hashsvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HASHSVC_DATA_DIR=/var/lib/hashsvc \
    HASHSVC_HOST=0.0.0.0 \
    HASHSVC_PORT=8080 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /var/lib/hashsvc
VOLUME ["/var/lib/hashsvc"]
EXPOSE 8080
# Ready means the index has caught up with the store's change log (README "Serving and replicas").
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["hashsvc-healthcheck"]
ENTRYPOINT ["tini", "--", "hashsvc-entrypoint"]
CMD ["serve"]

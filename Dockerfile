# The SageMaker serving image (bring-your-own-container). One recipe: the test suite builds it with
# Docker, the Dagger module with Directory.docker_build. Works with the legacy builder (no
# BuildKit-only syntax such as RUN --mount), since that is all some of our machines have.
#
# python:3.11-slim, pinned by tag and digest (the multi-platform index). Source: the official
# images' published digests, docker-library/repo-info, repos/python/remote/3.11-slim.md at commit
# 2477d553d2fdfa57b4ec11f63c8376eca8b7a253 (Python 3.11.15 on Debian trixie, built 2026-08-05),
# read on 2026-11-28. No registry is reachable where this was written: the first real build
# confirms it. Tests pass a locally made Debian bookworm stand-in (same Python 3.11 layout).
ARG BASE_IMAGE=python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

# uv, pinned to the version that wrote uv.lock; both stages below install exactly the lock with it.
FROM ${BASE_IMAGE} AS uv
ARG UV_VERSION=0.13.9
# UV_SYSTEM_CERTS: trust the system's certificate store, not uv's bundled roots, so a proxy's CA
# works wherever the system trusts it (Dagger's engine installs its CA certificates there; uv's
# own roots made the first engine build fail with "invalid peer certificate: UnknownIssuer").
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_SYSTEM_CERTS=1
# build-ca* matches nothing in a normal build. Test machines that reach PyPI through an
# intercepting proxy drop their CA bundle there as build-ca.pem; it never reaches the final stage.
COPY pyproject.toml uv.lock build-ca* /build/
WORKDIR /build
RUN set -eu; \
    if [ -f build-ca.pem ]; then export PIP_CERT=/build/build-ca.pem; fi; \
    python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet --no-cache-dir "uv==${UV_VERSION}"; \
    python3 -m venv --without-pip /opt/venv

# The checks' container (lint, test, security, the release commands, the AWS stand-in): the
# whole locked dev toolchain, dependencies only. The Dagger module and the test suite put the
# repository at /workspace on top and `uv sync` the project itself, so a source change never
# reinstalls the dependencies. docker-registry and htpasswd are the AWS stand-in's ECR; git names
# the checkout's commit (`bikeshare deploy` without --git-sha, and the test of it).
# test/pipeline/test_external_programs.py checks every program the suite starts is here.
FROM uv AS tools
RUN set -eu; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker-registry apache2-utils git >/dev/null; \
    rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    if [ -f build-ca.pem ]; then export SSL_CERT_FILE=/build/build-ca.pem; fi; \
    /opt/uv/bin/uv sync --no-cache --locked --no-install-project --all-extras
# REQUESTS_CA_BUNDLE: pip-audit (requests) trusts the system's store too, not certifi's copy.
ENV PATH=/opt/venv/bin:/opt/uv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /workspace

FROM uv AS build
ENV UV_COMPILE_BYTECODE=1
RUN set -eu; \
    if [ -f build-ca.pem ]; then export SSL_CERT_FILE=/build/build-ca.pem; fi; \
    /opt/uv/bin/uv sync --no-cache --locked --no-install-project --no-dev --extra serve
# Dependencies above, the project below: editing src/ does not reinstall the dependencies.
COPY README.md /build/
COPY src /build/src
RUN set -eu; \
    if [ -f build-ca.pem ]; then export SSL_CERT_FILE=/build/build-ca.pem; fi; \
    /opt/uv/bin/uv sync --no-cache --locked --no-dev --extra serve --no-editable

FROM ${BASE_IMAGE} AS serving
# The versions of the model's packages this image carries (`bikeshare runtime-versions` prints
# them from uv.lock); the release engine refuses to deploy a model trained with others.
ARG MODEL_RUNTIME=""
LABEL com.bikeshare.model-runtime="${MODEL_RUNTIME}" \
      com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.title="bikeshare-serving" \
      org.opencontainers.image.description="Bikeshare demand model server for SageMaker (MLflow pyfunc)"
# Only the virtualenv crosses over: no uv, pip cache, compilers or sources in the served image.
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --uid 1000 --no-create-home --shell /usr/sbin/nologin model-server
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1
USER model-server
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=2s --start-period=30s \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SAGEMAKER_BIND_TO_PORT', '8080') + '/ping', timeout=2)"]
# SageMaker runs `docker run IMAGE serve`: the argument becomes `bikeshare serve`.
ENTRYPOINT ["bikeshare"]
CMD ["serve"]

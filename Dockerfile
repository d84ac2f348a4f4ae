# tickrelay server image, listening on port 8000 as an unprivileged user.
#   docker build -t tickrelay .
#   docker run --rm -p 8000:8000 -e TICKRELAY_HOST=0.0.0.0 -e TICKRELAY_AUTH_SECRET=... tickrelay
# Every setting is a TICKRELAY_* environment variable (see README.md). With
# TICKRELAY_REDIS_URL, any number of these containers share their rooms (docker-compose.yml).
#
# Two stages: the first installs tickrelay and its dependencies into a virtualenv (pip and
# its build tools stay there), the second copies only that virtualenv onto a fresh base.
# Every dependency ships wheels for this platform, so no compiler is needed in either.
#
# The base is pinned to a full version tag. To pin it by digest as well, resolve it once
#   docker buildx imagetools inspect python:3.11.9-slim-bookworm
# and build with --build-arg PYTHON_IMAGE=python:3.11.9-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all:
RUN python -m venv /opt/tickrelay
WORKDIR /src
COPY . .
# --only-binary for the dependencies, so a missing wheel fails the build instead of
# compiling; tickrelay itself is pure Python and is built from this source tree.
RUN /opt/tickrelay/bin/pip install --no-binary tickrelay . \
    && /opt/tickrelay/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/tickrelay/bin:$PATH \
    TICKRELAY_HOST=0.0.0.0 \
    TICKRELAY_PORT=8000
RUN groupadd --system --gid 10001 tickrelay \
    && useradd --system --uid 10001 --gid tickrelay --no-create-home --shell /usr/sbin/nologin tickrelay
COPY --from=build /opt/tickrelay /opt/tickrelay
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
STOPSIGNAL SIGTERM

# Healthy means "accepts players": /readyz answers 503 while draining or without Redis.
# The slim image has no curl: ask with Python's standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]

CMD ["tickrelay", "serve"]

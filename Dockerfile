# tickrelay server image: one process, in-memory backplane, listening on port 8000.
#   docker build -t tickrelay .
#   docker run --rm -p 8000:8000 -e TICKRELAY_AUTH_SECRET=... tickrelay
# Every setting is a TICKRELAY_* environment variable (see README.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 tickrelay

USER tickrelay
WORKDIR /home/tickrelay
EXPOSE 8000

# The slim image has no curl: ask /healthz with Python's standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["tickrelay", "serve", "--host", "0.0.0.0", "--port", "8000"]

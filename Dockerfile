# The tikflow image: the worker by default (`python -m worker`); the sandbox runs from the same
# image (`tikflow sandbox`). Dependencies come from uv.lock exactly (`uv sync --locked`), without
# the dev group. Build: `docker compose build` (see docker-compose.yml).
FROM python:3.11.13-slim-bookworm

# The worker runs as this uid; set it to yours (compose: TIKFLOW_UID) to read a 0600 secret file.
ARG TIKFLOW_UID=10001

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    TIKFLOW_HEALTH_FILE=/tmp/tikflow/health \
    TIKFLOW_HEALTH_INTERVAL_S=10

# The same uv as the Makefile's; a non-root user; a state directory a named volume inherits.
RUN pip install --no-cache-dir "uv==0.13.9" \
    && useradd --system --uid "${TIKFLOW_UID}" --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin tikflow \
    && mkdir -p /var/lib/tikflow \
    && chown tikflow /var/lib/tikflow

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project --no-cache

COPY tikflow ./tikflow
COPY workflows ./workflows
COPY activities ./activities
COPY definitions ./definitions
COPY worker.py ./
COPY deploy/healthcheck.py ./deploy/healthcheck.py
RUN uv sync --locked --no-dev --no-cache

USER tikflow

# Healthy while the worker keeps touching TIKFLOW_HEALTH_FILE (worker.py), i.e. all its Temporal
# workers poll; a file, not a port, so any number of replicas run side by side.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

CMD ["python", "-m", "worker"]

# posterq runtime image: the API and the workers (no TensorFlow; LiteRT runs the model).
#   docker build -t posterq:latest .                # on python:3.11-slim
#   docker compose up --build --scale worker=3      # the whole stack: docker-compose.yml
# Where no container registry answers, scripts/docker_base.sh makes a Debian base and
# docker-compose.local.yml builds on it (docs/docker.md):
#   docker build --network host --build-arg BASE=posterq-base:bookworm -t posterq:local .
# Any BASE with python3 (3.10 or later, with its venv module) and useradd will do.
ARG BASE=python:3.11-slim

# --- build: the runtime and the `service` extra into /opt/posterq, a virtual environment ---------
# pip reads the base's settings: on python:3.11-slim, PyPI; on the local base, its /etc/pip.conf
# (scripts/docker_base.sh). The extra's psycopg[binary] brings its own libpq in the wheel, so the
# image needs no PostgreSQL client package.
FROM ${BASE} AS build
LABEL posterq.image=build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY posterq ./posterq
COPY api ./api
COPY worker ./worker
COPY training ./training
COPY models ./models
# The wheel carries the shipped model as package data (pyproject.toml), so /src stays behind in
# this stage. training/ is in the wheel's package list but imports TensorFlow only when used:
# the check below fails the build if TensorFlow (or its Keras) was installed after all; the next
# one, if psycopg cannot load a libpq (the binary wheel's: the base has none).
RUN python3 -m venv /opt/posterq \
 && /opt/posterq/bin/pip install '.[service]' \
 && /opt/posterq/bin/python -c "import importlib.util as u, sys; \
sys.exit(any(u.find_spec(m) is not None for m in ('tensorflow', 'keras')))" \
 && /opt/posterq/bin/python -c "import psycopg, psycopg_pool" \
 && /opt/posterq/bin/pip uninstall -y -q pip setuptools

# --- the image: the base, that environment, a non-root user --------------------------------------
FROM ${BASE}
LABEL posterq.image=runtime \
      org.opencontainers.image.title=posterq \
      org.opencontainers.image.description="posterq's API and workers: LiteRT, no TensorFlow"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/posterq/bin:$PATH \
    POSTERQ_REDIS_URL=redis://redis:6379/0 \
    POSTERQ_DATABASE_URL=postgresql://posterq@postgres:5432/posterq \
    POSTERQ_DATA_ROOTS=/data/posters
COPY --from=build /opt/posterq /opt/posterq
COPY scripts/docker_healthcheck.py /opt/posterq/bin/posterq-healthcheck
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin posterq \
 && mkdir -p /data/posters
USER posterq
WORKDIR /home/posterq
EXPOSE 8000
# The API answers /healthz on the port its command names; a worker's heartbeat is fresh in Redis.
HEALTHCHECK --interval=10s --timeout=8s --start-period=60s --retries=3 \
    CMD ["/opt/posterq/bin/python", "/opt/posterq/bin/posterq-healthcheck"]
CMD ["posterq", "api", "--host", "0.0.0.0", "--port", "8000"]

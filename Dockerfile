# posterq runtime image: the API and the workers (no TensorFlow; LiteRT runs the model).
#   docker build -t posterq .
#   docker compose up --scale worker=3
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY posterq ./posterq
COPY api ./api
COPY worker ./worker
COPY models ./models
# The runtime and the service extra only; the check fails the build if TensorFlow crept in.
RUN pip install '.[service]' \
 && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is not None)" \
 && useradd --uid 10001 --no-create-home posterq

USER posterq
ENV POSTERQ_REDIS_URL=redis://redis:6379/0 \
    POSTERQ_MODEL=/app/models/effnet-lite0-posters \
    POSTERQ_DATA_ROOTS=/data/posters
EXPOSE 8000
CMD ["posterq", "api", "--host", "0.0.0.0", "--port", "8000"]

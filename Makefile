# posterq: `make label DIR=folder` labels posters with the shipped model; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DIR ?=
OUT ?= genres.csv
ARGS ?=
# setuptools notes "Editable installation... be careful with folders" on every editable install
# of a flat layout like this one; it is no warning about the project, so the log stays clean.
INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -q

.PHONY: label test install install-dev lint clean

# The runtime only: numpy, Pillow, ai-edge-litert (no TensorFlow).
$(VENV)/.runtime: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(INSTALL) -e .
	touch $@

# Everything: training (TensorFlow), service and test tools.
$(VENV)/.dev: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(INSTALL) -e '.[train,service,dev]'
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

label: $(VENV)/.runtime
	@test -n "$(DIR)" || { echo "usage: make label DIR=<poster folder> [OUT=genres.csv]"; exit 2; }
	$(BIN)/posterq label "$(DIR)" --out "$(OUT)" $(ARGS)

test: $(VENV)/.dev
	$(BIN)/python -m pytest --durations=15 $(ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

# --- An installable wheel, for hosts without a checkout (docs/workers.md) --------------------
# dist/posterq-<version>-py3-none-any.whl: every package and the shipped model (package data).
# Built by this environment's setuptools (>=77, installed here once), so offline after that;
# build/ goes first, or setuptools would package what an older build left there.
.PHONY: wheel

wheel: $(VENV)/.runtime
	$(INSTALL) 'setuptools>=77'
	rm -rf build
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation --wheel-dir dist .
	# The build's leftovers: an egg-info in the checkout would make pip (and tests/test_wheel.py)
	# believe posterq is installed wherever the checkout is on the path.
	rm -rf build posterq.egg-info
	@echo "make wheel: $$(ls -t dist/posterq-*.whl | head -n 1)"

# --- The queue service on this machine ------------------------------------------------------
# `make serve` starts Redis (when none answers at POSTERQ_REDIS_URL and redis-server is installed),
# the API on HOST:PORT and one worker with WORKERS processes; Ctrl-C stops all of them.
# DATA_ROOTS=/some/posters lets directory jobs read that folder. No TensorFlow is installed.
# Jobs and results go to POSTERQ_DATABASE_URL (PostgreSQL), or without one to a SQLite file in
# ~/.local/share/posterq/ (docs/service.md says why).
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
DATA_ROOTS ?= $(POSTERQ_DATA_ROOTS)

.PHONY: serve install-service

$(VENV)/.service: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(INSTALL) -e '.[service]'
	touch $@

install-service: $(VENV)/.service

serve: SHELL := /bin/bash
serve: $(VENV)/.service
	@export POSTERQ_DATA_ROOTS="$(DATA_ROOTS)"; url="$${POSTERQ_REDIS_URL:-redis://127.0.0.1:6379/0}"; \
	pids=""; trap 'echo "posterq serve: stopping"; kill $$pids 2>/dev/null; wait; exit 0' INT TERM; \
	if ! $(BIN)/python -c "import redis,sys; redis.Redis.from_url(sys.argv[1]).ping()" "$$url" 2>/dev/null; then \
	  if ! command -v redis-server >/dev/null; then \
	    echo "posterq serve: no Redis answers at $$url and redis-server is not installed"; exit 1; fi; \
	  mkdir -p $(VENV)/redis; \
	  redis-server --port 6379 --bind 127.0.0.1 --dir $(CURDIR)/$(VENV)/redis --appendonly yes \
	    --maxmemory-policy noeviction --loglevel warning & pids="$$!"; \
	  for i in $$(seq 50); do $(BIN)/python -c "import redis,sys; redis.Redis.from_url(sys.argv[1]).ping()" \
	    "$$url" 2>/dev/null && break; sleep 0.1; done; \
	  echo "posterq serve: started redis-server (pid $$pids)"; \
	else echo "posterq serve: using the Redis that already answers at $$url (keys under posterq:)"; fi; \
	$(BIN)/posterq api --host $(HOST) --port $(PORT) & pids="$$pids $$!"; \
	$(BIN)/posterq worker --concurrency $(WORKERS) --hostname serve@%h & pids="$$pids $$!"; \
	echo "posterq serve: API on http://$(HOST):$(PORT), $(WORKERS) worker processes; Ctrl-C stops"; \
	if [ -n "$${POSTERQ_DATABASE_URL:-}" ]; then echo "posterq serve: results in POSTERQ_DATABASE_URL"; \
	else echo "posterq serve: results in $${XDG_DATA_HOME:-$$HOME/.local/share}/posterq/posterq.sqlite3 (SQLite)"; fi; \
	wait

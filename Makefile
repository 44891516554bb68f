# posterq: `make label DIR=folder` labels posters with the shipped model; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DIR ?=
OUT ?= genres.csv
ARGS ?=

.PHONY: label test install install-dev lint clean

# The runtime only: numpy, Pillow, ai-edge-litert (no TensorFlow).
$(VENV)/.runtime: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# Everything: training (TensorFlow), service and test tools.
$(VENV)/.dev: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,service,dev]'
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

label: $(VENV)/.runtime
	@test -n "$(DIR)" || { echo "usage: make label DIR=<poster folder> [OUT=genres.csv]"; exit 2; }
	$(BIN)/posterq label "$(DIR)" --out "$(OUT)" $(ARGS)

test: $(VENV)/.dev
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

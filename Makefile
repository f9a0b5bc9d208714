# data-bridge developer tasks. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Tests and clippy link against the same interpreter the extension is built for.
export PYO3_PYTHON := $(abspath $(PY))
LIBPYTHON_DIR = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
# tests/pyloop also runs on CPython 3.13, built from Debian's source package by
# .ci/python313.sh (Debian 12 ships 3.11 only), with the extension built into .venv313.
VENV313 := .venv313
PY313 := $(VENV313)/bin/python

.PHONY: help run test lint format bench build cargo-test pytest pytest313 suites clean \
	_lint _cargo-test _pytest _build313 _pytest313 _suites

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(VENV)/bin/maturin:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "maturin>=1.7,<2"

build: $(VENV)/bin/maturin ## Build the extension (release) and install it with the test tools
	$(VENV)/bin/maturin develop --release --extras test

run: build ## Serve the example app
	$(PY) examples/app.py

lint: build ## Check formatting and lints (Rust and Python)
	$(MAKE) --no-print-directory _lint

cargo-test: build ## Run the Rust unit and integration tests
	$(MAKE) --no-print-directory _cargo-test

pytest: build ## Run the Python test suite against the release build
	$(MAKE) --no-print-directory _pytest

pytest313: ## Run tests/pyloop on CPython 3.13 (builds the interpreter once)
	$(MAKE) --no-print-directory _pytest313

suites: build ## Run anyio's and aiohttp's own test subsets on asyncio's loop and on PyLoop
	$(MAKE) --no-print-directory _suites

test: build ## Run every check and test (what CI runs)
	$(MAKE) --no-print-directory _lint _cargo-test _pytest _pytest313 _suites

_lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks examples
	$(VENV)/bin/ruff format --check python tests benchmarks examples
	$(PY) -m mypy.stubtest data_bridge._native

format: build ## Format Rust and Python code
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benchmarks examples
	$(VENV)/bin/ruff check --fix python tests benchmarks examples

_cargo-test:
	LD_LIBRARY_PATH=$(LIBPYTHON_DIR) cargo test --workspace

_pytest:
	$(PY) -m pytest

# The 3.13 extension only has to be correct, not fast: release without LTO and with
# parallel codegen links in seconds instead of minutes, and its own target dir keeps
# cargo from rebuilding PyO3 and everything above it each time the interpreter switches.
_build313:
	@set -e; py=$$(.ci/python313.sh); \
	if [ ! -x $(VENV313)/bin/maturin ]; then \
		$$py -m venv $(VENV313) && $(PY313) -m pip install -q --upgrade pip "maturin>=1.7,<2"; \
	fi
	CARGO_TARGET_DIR=$(abspath target/py313) CARGO_PROFILE_RELEASE_LTO=off \
		CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 PYO3_PYTHON=$(abspath $(PY313)) \
		VIRTUAL_ENV=$(abspath $(VENV313)) $(VENV313)/bin/maturin develop --release --extras test

_pytest313: _build313
	$(PY313) -m pytest tests/pyloop

_suites:
	$(PY) tests/pyloop/suites/run.py

bench: $(VENV)/bin/maturin ## Run the benchmarks against the peers (installs them)
	$(VENV)/bin/maturin develop --release --extras test,bench
	$(PY) -m benchmarks

clean: ## Remove build outputs and the virtualenv
	cargo clean
	rm -rf $(VENV) $(VENV313) python/data_bridge/*.so

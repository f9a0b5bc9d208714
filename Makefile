# data-bridge developer tasks. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Tests and clippy link against the same interpreter the extension is built for.
export PYO3_PYTHON := $(abspath $(PY))
LIBPYTHON_DIR = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')

.PHONY: help run test lint format bench build cargo-test pytest clean _lint _cargo-test _pytest

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

test: build ## Run every check and test (what CI runs)
	$(MAKE) --no-print-directory _lint _cargo-test _pytest

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

bench: $(VENV)/bin/maturin ## Run the benchmarks against the peers (installs them)
	$(VENV)/bin/maturin develop --release --extras test,bench
	$(PY) -m benchmarks

clean: ## Remove build outputs and the virtualenv
	cargo clean
	rm -rf $(VENV) python/data_bridge/*.so

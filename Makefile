# Developer commands for gpuledger. `make help` lists them.
# Everything installs into ./.venv; Rust builds go to ./target.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(BIN):$(PATH)
KAFKA := compose/kafka-local/kafka-local.sh
S3 := compose/s3-local/s3-local.sh

.DEFAULT_GOAL := help
.PHONY: help setup build build-debug test test-rust test-python lint fmt bench demo kafka-up kafka-down s3-up s3-down clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed ## Create .venv with the build, test and lint tools (and Chromium)
	bash compose/build-deps/install.sh
	bash compose/chromium/install.sh

# The compiled module is deleted first, so a failed build can never leave a stale one behind
# to be imported; maturin then rebuilds (incrementally) and installs the package editable.
build: setup ## Build the Rust extension (release) into the package
	rm -f python/gpuledger/_engine*.so
	$(BIN)/maturin develop --release --quiet

build-debug: setup ## Build the Rust extension without optimizations (faster compile)
	rm -f python/gpuledger/_engine*.so
	$(BIN)/maturin develop --quiet

test: build lint test-rust test-python ## Set up, build, lint and run every test (starts Kafka itself)

test-rust: ## Rust unit tests
	cargo test --release -p gpuledger-engine

test-python: ## pytest, including the real-Kafka tests
	$(BIN)/pytest

lint: setup ## rustfmt, clippy (warnings are errors), ruff, mypy
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	$(BIN)/ruff check python tests benches
	$(BIN)/ruff format --check python tests benches
	$(BIN)/mypy

fmt: setup ## Format Rust and Python sources
	cargo fmt --all
	$(BIN)/ruff format python tests benches
	$(BIN)/ruff check --fix python tests benches

bench: build ## Benchmarks against peers, all cases (see benches/README.md)
	$(BIN)/python benches/run_all.py

demo: build ## Run gpuledger on its embedded simulated fleet (no Kafka needed)
	$(BIN)/gpuledger demo

kafka-up: ## Start the local Kafka broker (no Docker needed)
	$(KAFKA) up

kafka-down: ## Stop the local Kafka broker
	$(KAFKA) down

s3-up: ## Start the local S3-compatible server (S3Proxy, no Docker needed)
	$(S3) up

s3-down: ## Stop the local S3-compatible server
	$(S3) down

clean: ## Remove build output and the virtualenv
	cargo clean
	rm -rf $(VENV) python/gpuledger/_engine*.so

# gpulab: `make dev` runs everything locally, `make test` runs every test. `make help` lists the rest.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# uv is the one tool we bootstrap ourselves (from PyPI, pinned); everything Python comes through it.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/$(TOOLS)/bin/uv)
PY := .venv/bin/python
# Compiled bytecode at install: this machine sets PYTHONDONTWRITEBYTECODE, and without .pyc files
# every service start recompiles its dependencies (seconds per process on 2 cores).
export UV_COMPILE_BYTECODE := 1
PY_SOURCES := libs/gpulab-core/src services/*/src tools/devstack/src
PY_TESTS := $(sort $(dir $(wildcard libs/*/tests/*.py services/*/tests/*.py tools/*/tests/*.py))) tests/


.PHONY: system-deps help install dev test lint typecheck pytest agent-test frontend-test deploy-check e2e gen bench chaos clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(CURDIR)/$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml tools/devstack/pyproject.toml
	$(UV) sync --frozen --all-packages
	$(PY) -m compileall -q $(PY_SOURCES)
	@touch $@

# sslyze for the TLS test, in its own locked environment (tools/tls-scan/pyproject.toml says why).
TLS_SCAN := $(TOOLS)/tls-scan
$(TLS_SCAN)/.installed: $(UV) tools/tls-scan/uv.lock tools/tls-scan/pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(TLS_SCAN) $(UV) sync --frozen --project tools/tls-scan
	@touch $@

install: .venv/.installed $(TLS_SCAN)/.installed ## install the Python workspace (uv), the web app's and the agent's dependencies
	$(MAKE) --no-print-directory -C frontend install
	cd agent && go mod download

dev: install ## run all of gpulab locally: embedded PostgreSQL + NATS, six services, the web app
	$(MAKE) --no-print-directory -C agent build  # served at /downloads/ for install-agent.sh
	$(PY) -m gpulab_devstack

# In this order, which prerequisites would not guarantee (make -j): the Debian packages the tests use,
# a snapshot of the machine's accounts, /home and /etc/ssh (after those packages: openssh-server adds
# an sshd account and /etc/ssh), every test, then the check that they left the machine as they found
# it (also when a test failed: it says what changed).
HOST_STATE := .host-state.json
test: ## every test of every language; fails if they changed the machine's accounts, /home or /etc/ssh
	$(MAKE) --no-print-directory install system-deps
	$(PY) scripts/host_state.py snapshot $(HOST_STATE)
	$(MAKE) --no-print-directory lint typecheck agent-test frontend-test deploy-check pytest \
	  || { $(PY) scripts/host_state.py check $(HOST_STATE); exit 1; }
	$(PY) scripts/host_state.py check $(HOST_STATE)

lint: .venv/.installed ## ruff (lint + format check) and buf lint of the protos
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(MAKE) --no-print-directory -C agent proto-lint

typecheck: .venv/.installed ## mypy --strict over every Python package and its tests
	.venv/bin/mypy $(PY_SOURCES) bench scripts tools/deploycheck/kubecheck
	@# Each test folder on its own: several are packages named `tests`.
	for d in $(PY_TESTS); do .venv/bin/mypy $$d; done

pytest: .venv/.installed system-deps ## pytest against real PostgreSQL, NATS and (web smoke test) chromium
	$(PY) -m gpulab_devstack.pytest_all

# Debian's chromium for the real-browser smoke test (never a browser download by a test tool),
# OpenSSH's server, whose real `sshd -T` checks the drop-ins the agent writes in its throwaway-host
# test, and HAProxy, which validates compose's grpc-front configuration and balances pki's replicas
# in its test (neither daemon is started by the package: policy-rc.d keeps its scripts from starting
# one, and goes again if we made it). Installed as root with apt-get; otherwise a missing chromium
# is an error, and a missing openssh-server or haproxy skips what needs it, saying so.
system-deps: ## install the Debian packages the tests use when missing (as root: chromium, openssh-server, haproxy)
	@missing=(); \
	command -v chromium >/dev/null || missing+=(chromium); \
	command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server); \
	command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy); \
	if [ $${#missing[@]} -eq 0 ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's $${missing[*]} for the tests"; \
	  own_policy=; trap '[ -z "$$own_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    own_policy=1; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$${missing[@]}" >/dev/null; \
	elif [[ " $${missing[*]} " == *" chromium "* ]]; then \
	  echo "make test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; \
	else \
	  if [[ " $${missing[*]} " == *" openssh-server "* ]]; then \
	    echo "system-deps: openssh-server is not installed and only root with apt-get installs it here:" \
	      "the agent's throwaway-host test will be SKIPPED (sudo apt-get install openssh-server)" >&2; \
	  fi; \
	  if [[ " $${missing[*]} " == *" haproxy "* ]]; then \
	    echo "system-deps: haproxy is not installed and only root with apt-get installs it here:" \
	      "haproxy.cfg will NOT BE VALIDATED and the HAProxy test will be SKIPPED (sudo apt-get install haproxy)" >&2; \
	  fi; \
	fi

# The privileged tests need root and a mount namespace (CI has both); elsewhere they are reported as
# not run, loudly, and never counted as passed.
agent-test: ## go vet + go test (race) + a static build of the agent; as root also its privileged tests
	$(MAKE) --no-print-directory -C agent test build
	@if [ "$$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then \
	  $(MAKE) --no-print-directory -C agent test-privileged; \
	else \
	  echo "agent-test: NOT RUN: the privileged tests (real useradd/userdel in a throwaway mount namespace) need root and unshare; CI runs them" >&2; \
	fi

frontend-test: ## the web app's formatting, unit tests (Vitest) and production build (with its size budget)
	$(MAKE) --no-print-directory -C frontend lint test build

deploy-check: ## validate compose.yaml, the Caddyfile, haproxy.cfg and the Kubernetes manifests
	$(MAKE) --no-print-directory -C tools/deploycheck check

gen: .venv/.installed ## regenerate the protobuf/gRPC code and the web app's API client; committed, never edited
	PYTHON=$(PY) scripts/gen-proto.sh
	$(MAKE) --no-print-directory -C frontend install
	PYTHON=$(PY) scripts/gen-api-client.sh

# The chaos test runs once in `make test` (tests/test_chaos.py); here SEEDS times in a row, each with a
# fresh seed, printed with its summary (GPULAB_CHAOS_SEED=<seed> replays one).
SEEDS ?= 1
chaos: .venv/.installed system-deps ## the chaos test SEEDS times in a row (fresh seeds): make chaos SEEDS=3
	@for i in $$(seq $(SEEDS)); do \
	  echo "=== chaos run $$i of $(SEEDS)"; \
	  $(PY) -m pytest tests/test_chaos.py -q -p no:cacheprovider || exit 1; \
	done; echo "chaos: $(SEEDS) seed(s) passed in a row"

bench: .venv/.installed ## benchmarks with their bare baselines; results go to docs/benchmarks.md
	$(PY) -m bench

clean: ## remove build output (keeps the local run's data in .gpulab/)
	rm -rf .venv $(TOOLS) agent/bin frontend/dist frontend/.angular

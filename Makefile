# tradeplane: the two commands are `make up` (the whole platform, embedded default)
# and `make test` (the whole suite). Both install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MANIFESTS := requirements-dev.txt $(wildcard gen/python/pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml gateway/pyproject.toml)

.PHONY: up test protos protos-check lint typecheck check bench bench-deps test-chaos clean install observe debian-packages web

install: $(STAMP)

$(STAMP): $(MANIFESTS) scripts/bootstrap.sh
	@scripts/bootstrap.sh
	@touch $(STAMP)

## Start every service (and the gateway when present) on the embedded default; Ctrl-C stops all.
up: $(STAMP) web
	@$(PY) -m tradeplane.platform up

## Run the whole test suite (installs the Debian packages it drives, e.g. Prometheus, first).
test: $(STAMP) debian-packages web
	@$(PY) -m pytest $(PYTEST_ARGS)

## The chaos suite's longer variants (more fuzzing); SEED=N repeats a run (it is printed).
test-chaos: $(STAMP)
	@CHAOS_SOAK=1 FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} CHAOS_STREAM_EVENTS=$${CHAOS_STREAM_EVENTS:-100000} \
	  CHAOS_SUBMIT_ORDERS=$${CHAOS_SUBMIT_ORDERS:-1000} CHAOS_SUBMIT_KILLS=$${CHAOS_SUBMIT_KILLS:-6} \
	  CHAOS_FILLS=$${CHAOS_FILLS:-10000} CHAOS_FILL_KILLS=$${CHAOS_FILL_KILLS:-5} \
	  $(PY) -m pytest tests/chaos -p no:cacheprovider \
	  --seed=$${SEED:-$$RANDOM} $(PYTEST_ARGS)

debian-packages:
	@scripts/debian_packages.sh

## Build the web UI (gateway/web -> gateway/web/dist); a quick no-op when it is current.
web:
	@scripts/build_web.sh

## Run a real Prometheus (Debian `prometheus`) scraping the `make up` platform, rules loaded.
observe: $(STAMP) debian-packages
	@$(PY) -m tradeplane.platform.observe $(OBSERVE_ARGS)

## Regenerate gen/python from protos/ (messages, gRPC stubs, .pyi).
protos: $(STAMP)
	@cd protos && ../$(VENV)/bin/buf format -w && ../$(VENV)/bin/buf lint
	@scripts/gen_protos.sh

## Fail when protos are unformatted, fail lint, or gen/python is not what `make protos` makes.
protos-check: $(STAMP)
	@cd protos && ../$(VENV)/bin/buf format -d --exit-code && ../$(VENV)/bin/buf lint
	@scripts/gen_protos.sh >/dev/null
	@if [ -n "$$(git status --porcelain -- gen/python)" ]; then \
	  echo "error: gen/python is stale; run 'make protos' and commit the result:"; \
	  git status --porcelain -- gen/python; exit 1; fi
	@echo "protos: formatted, lint clean, generated code current"

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	@$(VENV)/bin/mypy libs/runtime/src/tradeplane/runtime libs/coinbase/src/tradeplane/coinbase libs/platform/src/tradeplane/platform libs/indicators/src/tradeplane/indicators $(wildcard libs/strategies/src/tradeplane/strategies) \
	  gateway/src/tradeplane/gateway \
	  $(patsubst %/__init__.py,%,$(wildcard services/*/src/tradeplane/*/domain/__init__.py))

check: protos-check lint typecheck test

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## Optional engines bench/backtest.py compares against (vectorbt, backtesting.py).
bench-deps: $(STAMP)
	@$(VENV)/bin/uv pip install --python $(PY) -q -r requirements-bench.txt

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

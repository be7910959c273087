# Cairn — the two commands a new user needs are `make demo` and `make test`.
# Every target creates .venv/ on first use and installs what it needs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: prod-check help os-tools s3sig bench-tools demo test test-sqlite lint fmt proto proto-check bench bench-console bench-restore screenshots browser pin clean

help:
	@echo "make demo         run the whole platform locally on embedded defaults (PORT=8000, GATEWAY_PORT=7443)"
	@echo "make test         install and run the full test suite"
	@echo "make prod-check   the production installation (deploy/) as local processes"
	@echo "make lint         ruff + generated-stub check"
	@echo "make fmt          format and auto-fix with ruff"
	@echo "make proto        regenerate gRPC stubs from proto/"
	@echo "make bench        engine benchmark side by side with restic and borg"
	@echo "make bench-console console pages at 10,000 devices / 1M job runs (PostgreSQL)"
	@echo "make bench-restore snapshot browser (200,000 files) and a 5 GiB zip download vs restic dump"
	@echo "make screenshots  PNGs of the console's main pages under var/screenshots/"
	@echo "make pin          re-pin requirements/*.txt from requirements/*.in"

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

# One stamp per requirement set, so an edit to the pins reinstalls.
$(VENV)/.console: requirements/console.txt requirements/agent.txt pyproject.toml | $(VENV)/bin/activate
	$(PIP) install -q -r requirements/console.txt
	$(PIP) install -q --no-deps --no-build-isolation -e . 2>/dev/null || $(PIP) install -q --no-deps -e .
	touch $@

$(VENV)/.dev: requirements/dev.txt $(VENV)/.console
	$(PIP) install -q -r requirements/dev.txt
	touch $@

# make demo PORT=9000 (console port; the gateway takes the next two) or GATEWAY_PORT=…
PORT ?= 8000
demo: $(VENV)/.console
	$(PY) manage.py demo --port $(PORT)$(if $(GATEWAY_PORT), --gateway-port $(GATEWAY_PORT))

# Debian packages the suite drives for real: chromium for the browser tests
# (Playwright's own download cannot work offline), btrfs-progs for the
# point-in-time snapshot tests on a loop-mounted btrfs, pg_dump/pg_restore for
# the console's disaster-recovery bundle. command:package pairs.
OS_TOOLS := chromium:chromium mkfs.btrfs:btrfs-progs pdftoppm:poppler-utils pg_dump:postgresql-client
os-tools:
	@missing=""; for t in $(OS_TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $$missing; \
	  else echo "missing:$$missing - the tests that need them are skipped (sudo apt-get install$$missing)"; fi; fi

browser: os-tools

# The suite's signature-checking S3 server (tests/s3sig: an npm package pinned
# by its package-lock.json; moto checks no signature). Without npm the tests
# that need it are skipped (fail under CI=true).
S3SIG := tests/s3sig
s3sig:
	@if [ ! -d $(S3SIG)/node_modules ] || [ $(S3SIG)/package-lock.json -nt $(S3SIG)/node_modules ]; then \
	  if command -v npm >/dev/null 2>&1; then npm ci --prefix $(S3SIG) --no-audit --no-fund; \
	  else echo "missing: npm - the signature-checking S3 tests are skipped (apt-get install npm)"; fi; fi

# Tools the benchmark compares against (Debian packages).
bench-tools:
	@command -v restic >/dev/null 2>&1 && command -v borg >/dev/null 2>&1 || { \
	  apt-get update -q && apt-get install -y -q restic borgbackup; }

test: $(VENV)/.dev os-tools s3sig
	$(PY) -m pytest $(PYTEST_ARGS)

# The production installation of deploy/ brought up as local processes with
# the commands the compose file and systemd units declare, then used by an
# agent from 127.0.0.2 (tests/prod; also part of `make test`). Needs
# PostgreSQL (DATABASE_URL) and redis-server; about 2 minutes.
prod-check: $(VENV)/.dev
	$(PY) -m pytest tests/prod $(PYTEST_ARGS)

# The database tests again on the embedded SQLite configuration (CI runs both).
test-sqlite: $(VENV)/.dev
	env -u DATABASE_URL $(PY) -m pytest -m "not browser and not e2e" $(wildcard tests/setup tests/console tests/gateway) $(PYTEST_ARGS)

lint: $(VENV)/.dev proto-check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

proto: $(VENV)/.dev
	$(PY) proto/build.py

proto-check: $(VENV)/.dev
	$(PY) proto/build.py --check

bench: $(VENV)/.dev bench-tools
	$(PY) -m tests.bench.engine_bench $(BENCH_ARGS)

# Restore without the device (issue 11): first screen of a 200,000-file
# snapshot, cold and warm; a 5 GiB folder streamed as a zip (peak RSS of the
# serving process) next to restic dump. Figures in docs/performance.md.
bench-restore: $(VENV)/.dev bench-tools
	$(PY) -m tests.bench.restore_bench $(BENCH_ARGS)

# Console pages at fleet scale: 10,000 devices and ~1,000,000 job runs in a
# PostgreSQL database of its own (created and dropped here).
PERF_DB ?= cairn_perf
bench-console: $(VENV)/.dev
	dropdb -h 127.0.0.1 -U postgres --if-exists $(PERF_DB)
	createdb -h 127.0.0.1 -U postgres $(PERF_DB)
	export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$(PERF_DB); \
	  $(PY) manage.py migrate -v0 && \
	  $(PY) manage.py seed_demo --devices 10000 --days 100 --jobs-per-device 100 && \
	  $(PY) manage.py bench_console --repeat 7; status=$$?; \
	  dropdb -h 127.0.0.1 -U postgres $(PERF_DB); exit $$status

screenshots: $(VENV)/.dev browser
	$(PY) -m tests.browser.screenshots

pin:
	bash requirements/pin.sh

clean:
	rm -rf var/ .pytest_cache

# Everything runs from the project's own .venv; nothing is needed beyond python3 and Debian's apt.
VENV ?= .venv
PYTHON ?= python3
# Python caches compiled modules (__pycache__, ignored by git) even where the shell says not to:
# each process the tests start (Celery workers, the CLI, gunicorn) would compile the project
# again, 0.35 s of CPU each, and the unit suite took 25 s instead of 20.
export PYTHONDONTWRITEBYTECODE :=
BIN := $(VENV)/bin
RESPONDER_REDIS_URL ?= redis://127.0.0.1:6379/0
# make run HOST=... PORT=...; a HOST the shell exports (zsh sets one to the machine's name)
# is not an address to listen on, so only the command line or this file sets it.
ifneq ($(origin HOST),command line)
HOST := 127.0.0.1
endif
PORT ?= 8080
# The tests' Redis database; pytest-xdist worker N of `make test` takes this one + N
# (12 to 15 with the default four), so that each has its own queues and keys.
RESPONDER_TEST_REDIS_URL ?= redis://127.0.0.1:6379/12
# Test processes of `make test`: each with its own Redis database (the base above + its index),
# Celery worker and fakes; a test file runs whole on one of them (its module fixtures, a world
# or a Prometheus, start once). Up to 4 from database 12 (Redis has 16, the demo takes 11).
TEST_WORKERS ?= 4
# The demo world's Redis: it deletes every responder:* key of this database at start.
RESPONDER_DEMO_REDIS_URL ?= redis://127.0.0.1:6379/11
# A server where the tests may create (and drop) a database of their own.
RESPONDER_TEST_POSTGRES_DSN ?= postgresql://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?=

.PHONY: run test test-order test-nightly test-unit test-clock lint format lock test-services bench bench-storm demo demo-stop clean

# Installs take the exact versions of requirements.lock (the ones the suite ran with);
# pyproject.toml keeps its ranges for library users. `make lock` renews the lock.
$(BIN)/responder: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e .
	@touch $@

$(VENV)/.dev-installed: $(BIN)/responder
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	@touch $@

LOCK_VENV ?= var/lock-venv
## lock: renew requirements.lock: the newest releases pyproject.toml's ranges allow, installed
## into a fresh venv and frozen; then `make test` runs with them
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q -e '.[dev]'
	{ grep '^#' requirements.lock; \
	  $(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v '^#'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf $(LOCK_VENV)
	@echo "requirements.lock renewed: review git diff requirements.lock, then make test"

## run: receiver + workers + beat on $(HOST):$(PORT), default 127.0.0.1:8080
## (make run PORT=9000 HOST=0.0.0.0; outbox mode without a PagerDuty token)
run: $(BIN)/responder
	@RESPONDER_ALLOW_UNAUTHENTICATED="$${RESPONDER_ALLOW_UNAUTHENTICATED:-1}" \
	  scripts/run-with-redis "$(RESPONDER_REDIS_URL)" \
	  $(BIN)/responder run --host "$(HOST)" --port "$(PORT)"

test-services:
	scripts/install-test-services

## test: lint, install the services the tests need, run the whole suite on TEST_WORKERS
## processes, a file at a time each, the slowest files first (tests/file_seconds.json) and the
## unit files filling in at the end; the 15 slowest tests at the end, a JUnit report in
## var/test-report.xml (Redis and PostgreSQL: the ones at the addresses above, or throwaway
## ones under var/)
test: $(VENV)/.dev-installed test-services lint
	@url=$$(scripts/ensure-redis "$(RESPONDER_TEST_REDIS_URL)") && \
	  dsn=$$($(BIN)/python scripts/ensure-postgres "$(RESPONDER_TEST_POSTGRES_DSN)") && \
	  export RESPONDER_TEST_REDIS_URL="$$url" RESPONDER_TEST_POSTGRES_DSN="$$dsn" && \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	    --durations=15 --junitxml=var/test-report.xml $(PYTEST_ARGS)

## test-order: renew tests/file_seconds.json (the order `make test` starts files in) from the
## last `make test`'s report
test-order:
	scripts/file-seconds var/test-report.xml

## test-nightly: `make test` with twenty times the property tests' examples (Hypothesis's
## nightly profile: 2,000 a test instead of 100)
test-nightly:
	HYPOTHESIS_PROFILE=nightly $(MAKE) test

## test-unit: the unit suite alone: no Redis, no server, no subprocess; seconds (on every core)
test-unit: $(VENV)/.dev-installed
	$(BIN)/python -m pytest tests/unit -m "not integration" -n auto $(PYTEST_ARGS)

# The wall clock at two instants (UTC): a Wednesday 10:00 and a Saturday 10:00 in New York.
CLOCK_OPEN ?= 2026-12-09 15:00:00
CLOCK_CLOSED ?= 2026-12-12 15:00:00
# The tests whose subject is the hour (market and business hours, the SLA clock, what is said
# when); tests that run Prometheus or Alertmanager are left out: Go binaries ignore faketime,
# and two clocks days apart are no test of either.
CLOCK_TESTS ?= tests/unit $(addprefix tests/integration/test_,$(addsuffix .py,business_hours \
  closing communication email email_worker end_to_end incident_page_http pagerduty_replay \
  pipeline_functions report_cli resolution sla_actions sla_clock slack containment_again \
  watch_period rejudge sla_deadlines_pass))

## test-clock: the tests whose subject is the hour, once with the market open and once with it
## closed (Debian's faketime sets the wall clock of pytest and what it starts, not Redis's)
test-clock: $(VENV)/.dev-installed test-services
	@command -v faketime >/dev/null || scripts/install-test-services faketime
	@url=$$(scripts/ensure-redis "$(RESPONDER_TEST_REDIS_URL)") && \
	  dsn=$$($(BIN)/python scripts/ensure-postgres "$(RESPONDER_TEST_POSTGRES_DSN)") && \
	  for at in "$(CLOCK_OPEN)" "$(CLOCK_CLOSED)"; do \
	    echo "== the wall clock at $$at UTC"; \
	    RESPONDER_TEST_REDIS_URL="$$url" RESPONDER_TEST_POSTGRES_DSN="$$dsn" \
	    FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH="$(CURDIR)/tests/faketime" \
	    faketime "$$at" $(BIN)/python -m pytest $(CLOCK_TESTS) $(PYTEST_ARGS) || exit 1; \
	  done

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

SCENARIO ?= signal-latency

## demo: the EAFIX simulator (its services as containers on a fake Docker engine), Prometheus,
## Alertmanager, a fake PagerDuty and the responder; SCENARIO=risk-manager-down shows actions
## proposed, approved by a PagerDuty note, run and verified (DEMO_ARGS="--no-approve", ...)
demo: $(VENV)/.dev-installed test-services
	@url=$$(scripts/ensure-redis "$(RESPONDER_DEMO_REDIS_URL)") && \
	  RESPONDER_DEMO_REDIS_URL="$$url" $(BIN)/python -m demo --scenario $(SCENARIO) $(DEMO_ARGS)

demo-stop:
	@if [ -f var/demo/demo.pid ]; then kill "$$(cat var/demo/demo.pid)" && echo "demo stopping"; \
	  else echo "no demo running"; fi

## bench: intake throughput against the floor (needs wrk), time to evidence over 50 alerts,
## then the alert storm (10,000 deliveries in 60 s over 200 groups, a P0 at 30 s)
bench: $(VENV)/.dev-installed test-services
	@command -v wrk >/dev/null || scripts/install-test-services wrk
	@url=$$(scripts/ensure-redis "redis://127.0.0.1:6379/14") && \
	  BENCH_REDIS_URL="$$url" $(BIN)/python bench/intake.py
	@url=$$(scripts/ensure-redis "redis://127.0.0.1:6379/10") && \
	  BENCH_REDIS_URL="$$url" $(BIN)/python -m bench.time_to_evidence --alerts 50
	$(MAKE) bench-storm

STORM_ARGS ?=
## bench-storm: the alert storm alone; STORM_ARGS="--targets hanging" or "--kill-worker-at 20"
bench-storm: $(VENV)/.dev-installed test-services
	$(BIN)/python -m bench.storm $(STORM_ARGS)

clean:
	rm -rf var/bundles var/outbox .pytest_cache

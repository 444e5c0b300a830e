# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# What the service needs to run (`make run`), and that plus the test tools (`make test`): the
# test tools (Playwright, schemathesis, ruff, the client generator) are most of the download.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# The browser tests drive Debian's Chromium; Playwright never downloads a browser.
CHROMIUM := /usr/bin/chromium
# The load benchmark (and its smoke run in make test) drives the server with wrk.
WRK := /usr/bin/wrk
# Debian's prometheus package: promtool checks and unit-tests the alert rules, and the metrics
# test scrapes two servers with a real Prometheus.
PROMTOOL := /usr/bin/promtool

.PHONY: run test lint format bench clean

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet -e '.[fast]' \
		|| echo "!! gunicorn_h1c could not be built (a C compiler and Python's headers are needed): gunicorn parses requests in Python, slower" >&2
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Only when it is missing, and only as root or with password-less sudo; otherwise the browser
# tests skip loudly (and fail under CI=true).
$(CHROMIUM):
	@if ! command -v apt-get >/dev/null 2>&1; then \
		echo "!! $@ is missing and apt-get is not available: the browser tests will be skipped" >&2; \
	elif [ "$$(id -u)" -eq 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
			|| echo "!! could not install chromium: the browser tests will be skipped" >&2; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update && sudo apt-get install -y chromium \
			|| echo "!! could not install chromium: the browser tests will be skipped" >&2; \
	else \
		echo "!! $@ is missing: run 'sudo apt-get install chromium' for the browser tests" >&2; \
	fi

$(WRK):
	@if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo apt-get install -y -qq wrk; \
	else \
		echo "!! $@ is missing: run 'sudo apt-get install wrk' for the benchmark" >&2; \
	fi

$(PROMTOOL):
	@if [ "$$(id -u)" -eq 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends prometheus; \
	else \
		echo "!! $@ is missing: run 'sudo apt-get install prometheus' for the alert rules' tests" >&2; \
	fi

run: $(RUN_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/gunicorn -c project/gunicorn.conf.py

test: $(STAMP) $(CHROMIUM) $(WRK) $(PROMTOOL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(PROMTOOL) check rules monitoring/alerts.yml
	$(PROMTOOL) test rules monitoring/alerts.test.yml
	bash tests/run.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Full run: both runtime shapes, 10,000 rows, 3 interleaved rounds of 10 s per scenario.
# BENCH_ARGS="--rows 1000,10000,100000" adds the scaling table; see --help.
bench: $(STAMP) $(WRK)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/static .pytest_cache .ruff_cache

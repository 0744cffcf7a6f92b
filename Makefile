# Every target builds what it needs; `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export DAGSTER_DISABLE_TELEMETRY := 1
export GX_ANALYTICS_ENABLED := false
export QUALITY_HOME ?= $(CURDIR)/.quality_home
export DAGSTER_HOME ?= $(QUALITY_HOME)/dagster

.PHONY: install demo test test-slow test-all ui bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# The CPU torch first: anything later that asks for torch finds it satisfied.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,cluster,cloud]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/qaudit demo --home $(QUALITY_HOME)

# Tests never touch the demo's home: each run gets a temporary QUALITY_HOME and DAGSTER_HOME, removed
# afterwards (quality_tests/conftest.py does the same for a plain `pytest`).
TEST_HOMES = tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	export QUALITY_HOME="$$tmp/home" DAGSTER_HOME="$$tmp/home/dagster" && mkdir -p "$$DAGSTER_HOME"

# Two workers (pytest-xdist): CI's two cores; each worker is its own process with its own test homes
# (conftest.py), and its torch (and the audits it starts) on one thread: two workers' intra-op threads
# on two cores wait on each other at every barrier (the default run took 6% longer on two threads each).
# 8-9.5 min in two on CI (778 tests; 765 took 7:03-9:21 on 2026-12-07). The slow tests stay in one: they time servers and
# signals, which two workers on two cores would only make flaky.
test: install
	$(TEST_HOMES) && OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" -n 2

# pytest exits 5 when no test carries the marker; that is not a failure here.
test-slow: install
	$(TEST_HOMES) && { $(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]; }

test-all: install
	$(TEST_HOMES) && $(BIN)/python -m pytest -q

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/qaudit ui --home $(QUALITY_HOME)

bench: install
	$(BIN)/pip install -q -e '.[bench,test]'
	$(BIN)/qaudit bench --home $(QUALITY_HOME)/bench

clean:
	rm -rf $(VENV) $(QUALITY_HOME)

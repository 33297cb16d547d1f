# vigil-edge: the two commands of the README, plus what they need.
#   make demo   set up a venv and run `vigil demo` (train -> evaluate -> convert -> agent)
#   make test   set up a venv, make sure mosquitto is installed, run the whole test suite
#   make lint   mypy (strict on edge_agent) and ruff (whole repo), configured in pyproject.toml

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test test-fast lint broker clean bench bench-latency bench-footprint bench-size bench-quality bench-reliability bench-chaos bench-report

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,edge,dev,fleet]'
	rm -f $(VENV)/.installed-* && touch $@

# mosquitto is a system package: the broker tests start a real one.
broker:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || sh .ci/install-mosquitto

demo: $(STAMP)
	$(BIN)/vigil demo

# Two worker processes (pytest-xdist); --dist loadfile keeps each file's tests, and so its module-scoped
# trained fixtures, in one worker; --no-loadscope-reorder hands the files out in collection order, which
# tests/conftest.py starts with the longest files. The whole suite must stay under 10 minutes on 2 cores.
test: $(STAMP) broker
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/python -m mypy edge_agent
	$(BIN)/ruff check .

# everything but the tests that train or convert a model
test-fast: $(STAMP) broker
	$(BIN)/python -m pytest -q -m "not slow"

# Benchmarks (not tests): each writes benchmarks/results/<name>.json and .md; see BENCHMARKS.md.
bench-latency bench-footprint bench-size bench-quality bench-chaos bench-report: $(STAMP) broker
	$(BIN)/python -m benchmarks.$(@:bench-%=%)

bench-reliability: $(STAMP) broker
	$(BIN)/python -m benchmarks.reliability

bench: bench-latency bench-size bench-footprint bench-reliability bench-chaos bench-quality bench-report

clean:
	rm -rf $(VENV) demo_out .pytest_cache

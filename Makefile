# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv on first use: torch's CPU wheel first (a plain `torch` requirement would
# pull a multi-GB CUDA build), then this project with its dev extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean test-tools

# Debian packages the tests drive: Chromium, headless, for the dashboard (no browser download at
# run time) and docker-compose, whose `config` checks docker-compose.yml (no Docker engine needed).
test-tools:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's$$missing for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/evolver serve --submit examples/synthetic-campaign.yaml

test: $(VENV)/.installed test-tools
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks.learning
	$(PY) -m benchmarks.speed
	$(PY) -m benchmarks.eval_speed
	$(PY) -m benchmarks.store_speed
	$(PY) -m benchmarks.coordinator_scale
	$(PY) -m benchmarks.trial_overhead
	$(PY) -m benchmarks.api_load
	$(PY) -m benchmarks.export_speed
	$(PY) -m benchmarks.demo_campaign
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) -m benchmarks.search_efficiency   # report + simulation from the committed ledger; `all` reruns the campaigns

clean:
	rm -rf $(VENV) runs .pytest_cache

# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv on first use: torch's CPU wheel first (a plain `torch` requirement would
# pull a multi-GB CUDA build), then this project with its dev extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean browser

# The dashboard tests drive Debian's Chromium headless (no browser download at run time).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the dashboard tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/evolver serve --submit examples/synthetic-campaign.yaml

test: $(VENV)/.installed browser
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

clean:
	rm -rf $(VENV) runs .pytest_cache

# Every target creates or refreshes the local virtual environment by itself.
# torch is pinned here (the CPU wheel); pyproject.toml declares the range torch>=2.6.
# `make demo` needs only the runtime dependencies; tests and benchmarks add the peers
# (transformers, torch_geometric, ...) from the `dev` extra.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV     := $(VENV)/.dev-installed

.PHONY: demo test bench lint clean

$(RUNTIME): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	$(PY) -m pip install -q -e '.[dev]'
	@# the explorer's browser tests drive Debian's chromium (they fail saying what to install without it)
	test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } || echo "chromium not installed: apt-get install -y chromium"
	@# a CJK font, so that attnlab viz draws Chinese labels (its test skips without one)
	test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || ! command -v apt-get >/dev/null || { apt-get update -qq && apt-get install -y -qq fonts-wqy-microhei; } || echo "fonts-wqy-microhei not installed: apt-get install -y fonts-wqy-microhei"
	@# msgfmt, so that the .po filler's tests check their catalogs with msgfmt --check (they skip that check without it)
	command -v msgfmt >/dev/null || ! command -v apt-get >/dev/null || { apt-get update -qq && apt-get install -y -qq gettext; } || echo "gettext not installed: apt-get install -y gettext"
	touch $(DEV)

demo: $(RUNTIME)
	$(VENV)/bin/attnlab demo

test: $(DEV)
	$(PY) -m pytest -n 2 --durations=15

bench: $(DEV)
	$(PY) -m benchmarks.run_all

lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

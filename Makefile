# Every target creates or refreshes the local virtual environment by itself.
# torch is pinned here (the CPU wheel); pyproject.toml declares the range torch>=2.6.
# `make demo` needs the runtime dependencies and the onnx extra (attnlab export); tests and
# benchmarks add the peers
# (transformers, torch_geometric, ...) from the `dev` extra.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV     := $(VENV)/.dev-installed
ONNX    := $(VENV)/.onnx-installed

.PHONY: demo test bench lint clean

$(RUNTIME): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(RUNTIME)

$(ONNX): $(RUNTIME)
	@# the README's commands include attnlab export and --runtime onnx: the demo's venv has them
	$(PY) -m pip install -q -e '.[onnx]'
	touch $(ONNX)

# System packages some tests use (they skip, or say what to install, without them). make test
# installs the missing ones with apt-get, saying so first; ATTNLAB_NO_APT=1 opts out.
#   chromium            the explorer's browser tests
#   fonts-wqy-microhei  Chinese labels in attnlab viz (its test skips without the font)
#   gettext             msgfmt --check of the catalogs the .po filler writes
$(DEV): $(RUNTIME)
	$(PY) -m pip install -q -e '.[dev]'
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || missing="$$missing fonts-wqy-microhei"; \
	command -v msgfmt >/dev/null || missing="$$missing gettext"; \
	if [ -z "$$missing" ]; then :; \
	elif [ -n "$(ATTNLAB_NO_APT)" ]; then \
	  echo "make: ATTNLAB_NO_APT is set: not installing$$missing (the tests that need them skip or say what to install)"; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "make: no apt-get here: install$$missing yourself for the tests that use them (they skip without)"; \
	else \
	  echo "make: apt-get install$$missing (chromium: the explorer's browser tests; fonts-wqy-microhei: Chinese labels in attnlab viz; gettext: msgfmt checks of .po catalogs); ATTNLAB_NO_APT=1 skips this"; \
	  { apt-get update -qq && apt-get install -y -qq $$missing; } || echo "make: not installed:$$missing (apt-get install -y$$missing)"; \
	fi
	touch $(DEV)

demo: $(RUNTIME) $(ONNX)
	$(VENV)/bin/attnlab demo

test: $(DEV)
	$(PY) -m pytest -n 2 --durations=15

bench: $(DEV)
	$(PY) -m benchmarks.run_all

lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

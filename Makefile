# Two entry points (see README): `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP := $(VENV)/.vt-installed
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt
DEMO_OUT ?= demo-output

.PHONY: setup demo test lint ffmpeg clean

$(STAMP): pyproject.toml requirements/constraints.txt $(wildcard plugins/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch torchvision
	$(PIP) -e '.[test,torchcodec,decord,diffusers,report,ray,yaml,arrow]' $(foreach p,$(PLUGIN_DIRS),-e '$(p)[test]')
	touch $@

setup: $(STAMP)

# torchcodec needs FFmpeg's shared libraries, the benchmarks the ffmpeg binary, and the report
# and vt-cogvideo page tests a real browser (chromium, driven by pip's playwright); vt itself needs
# none of them (PyAV bundles FFmpeg).
# Installed when we can (root + apt), else those tests are skipped with the reason.
ffmpeg:
	@{ command -v ffmpeg >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; } || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  ffmpeg chromium >/dev/null) || echo "ffmpeg/chromium not installed: their tests skip"; }

demo: setup
	$(BIN)/python scripts/demo.py --out $(DEMO_OUT)

# the lint and type gates: ruff (lint + format) on the whole tree, mypy --strict on core/
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup ffmpeg lint
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

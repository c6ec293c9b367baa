# hearby: set-up, code generation, checks.
#
#   make demo    set up if needed, render a demo catalog, start the whole stack, ingest, run an
#                A/B experiment with simulated listeners, print results (Ctrl-C stops it)
#   make dashboard  the dashboard alone, against a stack already running (`hearby up` serves
#                one itself)
#   make setup   install everything (Debian packages + .venv); idempotent, a second run is a no-op
#   make test    ruff + the whole test suite (runs `setup` first if needed)
#   make proto   regenerate the gRPC/protobuf stubs from proto/ into hearby/
#   make lint    ruff
#
# Debian packages are installed with apt-get; as root that runs directly, otherwise through sudo.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SITE = $(VENV)/lib/python3.11/site-packages
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: redis-server (streams, registry), fluidsynth + GM SoundFonts (corpus
# rendering; TimGM6mb is small and fast, FluidR3 is the quality one), chromium (the headless
# browser test of the dashboard; Debian's build, so no browser download).
APT_PACKAGES := redis-server fluidsynth libfluidsynth3 timgm6mb-soundfont fluid-soundfont-gm \
	chromium

STAMP_APT := $(VENV)/.stamp-apt
STAMP_PY := $(VENV)/.stamp-python

.PHONY: setup demo dashboard test lint proto proto-check clean-venv fuzz

setup: $(STAMP_APT) $(STAMP_PY)

# Re-checked when the Makefile changes, so a package added to the list reaches old checkouts.
$(STAMP_APT): Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

# The Python environment is rebuilt only when the pins change.
$(STAMP_PY): pyproject.toml requirements.lock | $(STAMP_APT)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	# torch first, by exact version, so pip takes the local CPU wheel and never the CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements.lock -e '.[dev]'
	# torchaudio pins an older torch: install it alone. On a CPU-only torch its CUDA-built
	# extension libraries fail to load; without them the pure-Python transforms work.
	$(PIP) install -q --no-deps torchaudio==2.11.0
	@if [ "$$($(PY) -c 'import torch; print(torch.version.cuda is None)')" = True ]; then \
	  rm -f $(SITE)/torchaudio/lib/*.so; fi
	$(PY) -c "import torchaudio, tritonclient.grpc, pymilvus, redis, soundfile, pedalboard, streamlit"
	@touch $@

demo: setup
	$(VENV)/bin/hearby demo

dashboard: setup
	$(VENV)/bin/hearby dashboard

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

# One command regenerates every stub; tests/unit/test_proto_stubs.py fails when they are stale.
proto: setup
	$(PY) -m hearby.protogen

clean-venv:
	rm -rf $(VENV)

# -- Kubernetes manifests (k8s/, docs/DEPLOY.md) ---------------------------------------------
# `make k8s-check` renders every overlay under k8s/overlays (with `kustomize build` or
# `kubectl kustomize` when one is on PATH, else hearby's own renderer of the kustomize
# features the manifests use) and validates every object offline against the Kubernetes
# JSON schemas (kubernetes-validate, a dev dependency), then hearby's rules (probes,
# requests/limits, non-root, read-only root fs, a PDB per workload). The test suite runs it
# (tests/unit/k8s/); it does not depend on `setup` so that the test never reinstalls.
K8S_RENDERER ?= auto
K8S_VERSION ?= 1.33

.PHONY: k8s-check
k8s-check:
	$(PY) -m hearby.k8s_check --renderer $(K8S_RENDERER) --kubernetes-version $(K8S_VERSION)

# -- Fuzzing (fuzz/, docs/RELIABILITY.md) ------------------------------------------------------
# `make fuzz` runs the atheris harnesses of the audio decoder and the filter compiler for 5
# minutes each and prints inputs tried, seconds, crashes and corpus size; it fails on a crash
# and keeps the input under var/fuzz/<target>/crashes/.
fuzz: setup
	$(PY) -m fuzz.run --target all --max-seconds 300

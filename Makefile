# Two entry points (README "Quick start"): `make smoke` runs the pipeline, `make test` runs the tests.
# Both create the virtual environment .venv first (Python 3.11+) and install occo into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

# Offline by design: model hubs and ultralytics' network checks stay silent, DVC sends no analytics.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export YOLO_OFFLINE ?= 1
export YOLO_AUTOINSTALL ?= 0
export YOLO_CONFIG_DIR ?= $(CURDIR)/.cache/ultralytics
export DVC_NO_ANALYTICS ?= 1

# The smoke run: the whole DAG on CPU in minutes, offline. Training runs 10 steps on 64-pixel crops of
# the synthetic set with a random VGG19 (no pretrained weights offline); fusion covers the synthetic
# and TNO test splits. `dvc exp run -S` records it as an experiment and applies the overrides to
# params.yaml in the workspace (`git checkout params.yaml` restores the defaults).
SMOKE_PARAMS ?= -S train.dataset=synthetic -S train.crop=64 -S train.max_steps=10 \
	-S train.vgg_random_init=true -S train.num_workers=0 -S train.checkpoint_every=5 -S train.log_every=1 \
	-S 'fuse.datasets=[synthetic/test,TNO/test]'

.PHONY: install test smoke bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e .
	$(BIN)/python -m pip check
	touch $@

test: install
	$(BIN)/python -m pytest

smoke: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run $(SMOKE_PARAMS)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics show --precision 3

bench: install
	$(BIN)/python bench/metrics.py

clean:
	rm -rf $(VENV) .cache

# Two entry points (README): `make smoke` runs the pipeline, `make test` runs the quick tests. Both create the
# virtual environment .venv first (Python 3.11+) and install occo into it. CI runs `make lint` and `make test-all`.

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

# The smoke run: the whole DAG on CPU in minutes, offline, recorded as the experiment `smoke`.
# No pretrained file can be fetched here, so every model is random-init, and only because a param asks:
# tiny Grounding DINO + SAM mask FMB's pairs (meaningless masks, real code path), a random VGG19 for the
# loss, YOLO and DeepLabV3+ from scratch. The synthetic set's own object masks go through the masks
# stage's import path, so they have shared, unique and background regions and every term of the
# contrastive loss (Eq. 5-8) is active. Training runs 10 steps on 64-pixel crops of the synthetic set
# (with those masks), fusion covers the synthetic splits plus the real TNO test
# pairs from ../shared, detection (40 epochs at 160 px, batch 2: enough for a nonzero AP in ~20 s per
# method) and segmentation (10 epochs at 96x128) train on the synthetic set, and the report gathers it
# all into reports/report.html. `dvc exp run -S` applies the overrides to params.yaml in the workspace
# (`git checkout params.yaml` restores the defaults).
SMOKE_PARAMS ?= -S masks.init=tiny -S '+masks.datasets.synthetic=[train]' -S masks.gallery=4 \
	-S '+masks.import.synthetic={train: data/raw/synthetic/train/masks}' \
	-S train.dataset=synthetic -S train.crop=64 -S train.max_steps=10 \
	-S train.vgg_random_init=true -S train.num_workers=0 -S train.checkpoint_every=5 -S train.log_every=1 \
	-S 'fuse.datasets=[synthetic/train,synthetic/test,TNO/test]' \
	-S 'detect.run=[synthetic]' -S detect.model=yolov5n -S detect.pretrained=false -S detect.epochs=40 \
	-S detect.imgsz=160 -S detect.batch=2 -S detect.nbs=2 -S detect.warmup_epochs=0 -S detect.workers=0 \
	-S segment.dataset=synthetic -S segment.encoder=resnet18 -S segment.encoder_weights=null -S segment.epochs=10 \
	-S 'segment.size=[96,128]' -S segment.batch_size=4 -S segment.num_workers=0

.PHONY: install test test-all lint params-table smoke smoke-omega6 smoke-official smoke-rfn rehearse bench gpu-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip check
	# `dvc plots show` offline: a page template with Vega inline, named in the untracked .dvc/config.local
	$(BIN)/python -m occo.report.render.offline_plots .cache/occo/plots.html
	$(BIN)/dvc config --local plots.html_template ../.cache/occo/plots.html
	touch $@

# Quick feedback: every test but those marked slow (models trained for many steps, whole stages).
test: install
	$(BIN)/python -m pytest -m "not slow"

# Everything, slow tests included (CI).
test-all: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# docs/params.md from the descriptions in occo/config/sections.py (tests/config/test_sections.py checks it).
params-table: install
	$(BIN)/python -m occo.config.table

smoke: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run -n smoke $(SMOKE_PARAMS)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics show --precision 3 dvclive/train/metrics.json
	@echo "smoke: tables in reports/fusion/ reports/detect/ reports/segment/; everything in reports/report.html"

# One ablation on top of the smoke run (docs/experiments.md): DVC re-runs train and everything after it
# with omega6=100 and compares the two experiments.
smoke-omega6: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run -n smoke-omega6-100 -S omega6=100
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics diff smoke smoke-omega6-100 -R --precision 4 --targets dvclive/train/metrics.json metrics/fusion

# The authors' whole setup on top of the smoke run (docs/experiments.md): `compat=official` alone switches the
# network, the loss, the training routine and the test routine to their code's; the `fuse` target keeps it to
# train and fuse (10 steps and the synthetic splits), then the training losses are compared with the smoke run's.
smoke-official: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run -n smoke-official -S compat=official fuse
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics diff smoke smoke-official --precision 4 --targets dvclive/train/metrics.json

# Fig. 20 (§4.5, docs/experiments.md) on top of the smoke run: RFN-Nest (b) with L_RFN and (c) with L_RFN + beta
# L_CCL, each its two stages on the synthetic set (a narrow network, 2 auto-encoder steps, then the smoke's 10
# fusion steps with its masks and random VGG19); fused, scored and trained on downstream like the smoke run; the
# second run's report shows both in its Fig. 20 section. (a), the published weights, needs the authors' files.
# compat=fixed undoes a smoke-official run made before it in the same workspace.
SMOKE_RFN ?= -S compat=fixed -S arch.name=rfn_nest -S 'arch.nest_widths=[8,16,16,16]' -S train.stage=both -S train.autoencoder_epochs=2 \
	-S 'report.fig20_gallery={dataset: synthetic, split: test, ids: [], n: 2}' -S 'report.fig20_datasets=[synthetic,TNO]'
smoke-rfn: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run -n smoke-rfn $(SMOKE_RFN) -S 'loss.terms=[rfn]'
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run -n smoke-rfn-ccl $(SMOKE_RFN) -S 'loss.terms=[rfn,ccl]'
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics diff smoke-rfn smoke-rfn-ccl -R --precision 4 --targets dvclive/train/metrics.json metrics/fusion

# The default configuration rehearsed (README): every stage through `dvc exp run` at the default architectures and
# sizes (SAM ViT-H, Grounding DINO Swin-T, VGG19 with crop 256 and batch 12, yolov5s at 640, DeepLabV3+ resnet50)
# with random weights, on 1 pair per split of ../shared, 2 training steps and one epoch downstream, in a fresh
# clone of HEAD (bench/rehearse.py says why each override); writes $(REHEARSAL_OUT): each stage's time and peak memory.
REHEARSAL_OUT ?= reports/rehearsal.md
rehearse: install
	$(BIN)/python -m bench.rehearse --venv $(VENV) --out $(REHEARSAL_OUT)

bench: install
	$(BIN)/python bench/metrics.py

# One prepared GPU check (docs/gpu_check.md): CUDA = CPU values first, then the timings of every stage and the
# rehearsal on CUDA, each check in its own process with its own time limit, 13 minutes in all; writes
# $(GPU_CHECK_OUT) and prints it.
# Without CUDA it says so and runs the CPU-possible checks at tiny sizes (the CI dry run).
GPU_CHECK_OUT ?= reports/gpu_check.md
gpu-check: install
	$(BIN)/python -m bench.gpu_check --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) .cache

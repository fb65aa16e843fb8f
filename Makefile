# Two commands set up and run everything on a fresh machine:
#   make demo   - create .venv, install, run the main job on the built-in synthetic atlas
#   make test   - create/update .venv, install test needs (incl. Xvfb + Mesa when root), run the suite
# Both are idempotent.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py src/napari_euclidphys/estimators/_forest_kernel.c | cksum | cut -d' ' -f1)
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

# Debian packages a real napari viewer needs under Xvfb (OpenGL through Mesa).
APT_PACKAGES := xvfb libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-cursor0 \
	libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
	libxcb-shape0 libdbus-1-3

.PHONY: demo test venv system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py src/napari_euclidphys/estimators/_forest_kernel.c | $(PY)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash tools/system-deps.sh $(APT_PACKAGES)

# Two pytest processes: TensorFlow and a napari/vispy OpenGL canvas cannot share one process under
# Xvfb + Mesa (abort at exit), so the real-viewer tests (marker `gui`) run on their own.
test: system-deps venv
	$(PY) -m pytest -m "not gui" $(PYTEST_ARGS)
	$(PY) -m pytest -m gui $(PYTEST_ARGS)

# The main job on the built-in synthetic atlas (no download): atlas -> train -> predict -> report.
# Each step runs only when its output is missing, so `make demo` is idempotent and resumable.
DEMO_GALAXIES ?= 40
DEMO_NPIX ?= 200
DEMO_EPOCHS ?= 100
BIN := $(VENV)/bin

$(DEMO_DIR)/atlas/manifest.json: | $(STAMP)
	$(BIN)/napari-euclidphys-atlas build --out $(DEMO_DIR)/atlas --n-galaxies $(DEMO_GALAXIES) \
		--npix $(DEMO_NPIX) --seed 2025 --projections O1,O5

$(DEMO_DIR)/train/report/report.md: $(DEMO_DIR)/atlas/manifest.json
	MPLBACKEND=Agg $(BIN)/napari-euclidphys-train --atlas $(DEMO_DIR)/atlas --out $(DEMO_DIR)/train \
		--models lr,rf,dnn --features bands --seed 2025 --max-epochs $(DEMO_EPOCHS) --n-estimators 50 \
		--min-samples-leaf 5 --max-train-pixels 150000

$(DEMO_DIR)/predict/.done: $(DEMO_DIR)/train/report/report.md
	$(BIN)/napari-euclidphys-predict --model $(DEMO_DIR)/train/models/rf --batch $(DEMO_DIR)/atlas \
		--projections O5 --out-dir $(DEMO_DIR)/predict
	touch $@

demo: venv $(DEMO_DIR)/predict/.done
	@echo
	@echo "demo: synthetic atlas  $(DEMO_DIR)/atlas  (not TNG50 data)"
	@echo "demo: models + report  $(DEMO_DIR)/train/models, $(DEMO_DIR)/train/report/report.md"
	@echo "demo: predicted maps   $(DEMO_DIR)/predict/"

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache

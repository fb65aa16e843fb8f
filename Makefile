# Two commands set up and run everything on a fresh machine:
#   make demo   - create .venv, install, run the main job on the built-in synthetic atlas
#   make test   - create/update .venv, install test needs (incl. Xvfb + Mesa when root), run the suite
# Both are idempotent.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=

# Debian packages a real napari viewer needs under Xvfb (OpenGL through Mesa).
APT_PACKAGES := xvfb libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-cursor0 \
	libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
	libxcb-shape0 libdbus-1-3

.PHONY: demo test venv system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash tools/system-deps.sh $(APT_PACKAGES)

test: system-deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	MPLBACKEND=Agg $(PY) -m napari_euclidphys.demo --out $(DEMO_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache

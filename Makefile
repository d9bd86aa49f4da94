# facesync — every target installs what it needs first (make install is idempotent).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml

.PHONY: install test check demo sync reconcile serve bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev,s3]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

check: install
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench
	$(BIN)/mypy

demo: install
	$(BIN)/python -m pipeline.demo

sync: install
	$(BIN)/facesync --config $(CONFIG) sync

reconcile: install
	$(BIN)/facesync --config $(CONFIG) reconcile

serve: install
	$(BIN)/facesync serve --port 8080 --data state/emulator-serve

# rsync is the no-op baseline: installed here when missing and we are root, else the bench says so.
bench: install
	@command -v rsync >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq rsync >/dev/null; } \
		|| echo "note: rsync is missing (apt-get install rsync): the no-op ratio will not be measured"
	$(BIN)/python -m bench

soak: install
	$(BIN)/python -m pytest -q -m soak tests/reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

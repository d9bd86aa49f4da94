# facesync — every target installs what it needs first (make install is idempotent).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml

.PHONY: install test check demo sync reconcile serve bench soak clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "facesync: installing into $(VENV) (first run only, about 40 s) ..."
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev,s3]'
	touch $(STAMP)

# One pytest worker per core (pytest-xdist); `pytest tests/x.py` alone runs in one process.
test: install
	$(BIN)/python -m pytest -q -n auto

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

# The demo's two HTML pages as headless Chromium draws them, in screenshots/ (git-ignored). Debian's
# chromium is installed here when missing and we are root; the browser gets a fresh profile and no network.
SHOTS    := screenshots
CHROMIUM := chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars
screenshots: install
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "chromium is missing: run as root, or apt-get install chromium" >&2; exit 1; }
	mkdir -p $(SHOTS)
	$(BIN)/python -m pipeline.demo >$(SHOTS)/demo.log 2>&1 || { tail -20 $(SHOTS)/demo.log; exit 1; }
	@for shot in report:1280,2150 search:1280,900; do \
		page=$${shot%%:*}; size=$${shot#*:}; profile=$$(mktemp -d); \
		timeout 120 $(CHROMIUM) --user-data-dir="$$profile" --window-size=$$size \
			--screenshot="$(CURDIR)/$(SHOTS)/$$page.png" "file://$(CURDIR)/demo/$$page.html" \
			>>$(SHOTS)/chromium.log 2>&1; rc=$$?; rm -rf "$$profile"; \
		[ $$rc = 0 ] || { echo "chromium failed on $$page.html (exit $$rc): see $(SHOTS)/chromium.log" >&2; exit 1; }; \
		echo "$(SHOTS)/$$page.png"; \
	done

soak: install
	$(BIN)/python -m pytest -q -n auto -m soak tests/reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

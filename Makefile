# dunning-stream developer targets. All are safe to re-run; `venv` reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
KAFKA  := tools/kafka/kafka-local

.PHONY: venv broker-start broker-stop broker-status test demo bench reliability

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[runtime,dev]'
	@touch $@

broker-start:
	@$(KAFKA) start
	@echo "bootstrap: $$($(KAFKA) bootstrap)"

broker-stop:
	@$(KAFKA) stop

broker-status:
	@$(KAFKA) status || true

# every test: tools/install-test-deps brings kcat and promtool or stops; --no-skip makes any skip a failure
test: venv
	@tools/install-test-deps
	$(VENV)/bin/python -m pytest -q --no-skip

# the fault tests at every kill point and a soak of 1M events (5% bad) through one worker, about 30 minutes;
# writes bench/results/reliability.json (README, "Guarantees")
reliability: venv
	@tools/install-test-deps
	$(VENV)/bin/python -m pytest -q --no-skip --reliability --reliability-out bench/results/reliability.json \
		tests/live/test_crash.py tests/live/test_faults.py tests/live/test_soak.py

# a month of generated billing for 300 accounts through a live worker on the local broker
demo: venv broker-start
	$(VENV)/bin/python -m streams.generators.demo $(DEMO_ARGS)

# every live-path figure of issue #8 in one run (bench/README.md); BENCH_ARGS=--quick for a one-minute smoke run
bench: venv broker-start
	$(VENV)/bin/python bench/live.py --bootstrap "$$($(KAFKA) bootstrap)" $(BENCH_ARGS)

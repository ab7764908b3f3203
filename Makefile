# Argus — the two commands:  make demo  and  make test
.PHONY: bootstrap demo test unit lint bench bench-live bench-gpu chaos graph stack-up stack-down stack-status schemas constraints clean vendor-leaflet

PY := .venv/bin/python
DURATION ?=
FRAMES ?= 300
CAMERAS ?= 8
FPS ?= 5
BENCH_DURATION ?= 120

bootstrap:  ## install everything (idempotent): Debian pkgs, .venv, .venv-triton, Kafka jars
	@bash ops/bootstrap.sh

demo: bootstrap  ## run everything on a real video; DURATION=120 stops after 120 s
	@$(PY) -m tools.cli demo $(if $(DURATION),--duration $(DURATION))

test: bootstrap lint  ## the whole suite against the real servers (started by the session)
	$(PY) -m pytest -p no:cacheprovider -ra --durations=15

unit: bootstrap  ## pure-logic tests only (no servers)
	$(PY) -m pytest -q tests/unit

lint: bootstrap  ## ruff, mypy, the layer contracts (import-linter), schemas and graph in sync
	.venv/bin/ruff check .
	.venv/bin/mypy argus schemas services pipelines tools tests
	.venv/bin/lint-imports
	$(PY) -m schemas.generate --check
	$(PY) -m tools.cli graph --check docs/architecture.md

bench: bootstrap  ## throughput: grabber → Kafka → detect vs. a plain model loop (FRAMES=300)
	@$(PY) -m tools.cli bench --frames $(FRAMES)

bench-live: bootstrap  ## real time: CAMERAS=8 cameras at FPS=5 for BENCH_DURATION=120 s, verdict
	@$(PY) -m tools.cli bench live --cameras $(CAMERAS) --fps $(FPS) --duration $(BENCH_DURATION)

chaos: bootstrap  ## scripted faults (worker kill, Triton/Redis/Kafka/Mosquitto down, camera lost, overload) vs a baseline
	@mkdir -p bench-results && $(PY) -m tools.cli chaos --json bench-results/chaos.json

bench-gpu:  ## on a host with an NVIDIA GPU: bench live --find-max with Triton's models on CUDA
	@bash ops/gpu-bench.sh $(FPS)

stack-up: bootstrap
	@$(PY) -m tools.cli stack up
stack-down:
	@$(PY) -m tools.cli stack down
stack-status:
	@$(PY) -m tools.cli stack status

schemas:
	$(PY) -m schemas.generate

vendor-leaflet:  ## refetch the console's Leaflet (pinned version, integrity checked) into its static files
	@bash ops/vendor-leaflet.sh

constraints: bootstrap  ## pin .venv's current versions in ops/constraints.txt (after an upgrade)
	@{ sed -n '1,3p' ops/constraints.txt; .venv/bin/pip freeze --exclude-editable; } > ops/constraints.txt.new
	@mv ops/constraints.txt.new ops/constraints.txt

clean: stack-down
	rm -rf .stack

graph:  ## rewrite the stage graph in docs/architecture.md from pipelines/stages (STAGES)
	$(PY) -m tools.cli graph --write docs/architecture.md

# Every target creates .venv and installs what it needs: a fresh clone with only
# Python 3.11+ is enough. uv is installed into .tools/ (never assumed on PATH).
PYTHON ?= python3
UV_VERSION ?= 0.13.8
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
# The documentation site; --strict makes a broken link or a bad page an error.
MKDOCS := NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

.PHONY: run test docs proto lint typecheck check bench bench-mqtt bench-fanout bench-grpc bench-clients bench-cli clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced-run: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --no-dev --inexact
	touch $@

.venv/.synced-dev: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --extra dev
	touch $@

# The embedded MQTT broker wants 127.0.0.1:1883; if another broker already has
# it, make run takes the next free port (telehub serve alone would refuse).
run: .venv/.synced-run  ## telehub on its embedded defaults (SQLite, HTTP 8000, MQTT 1883)
	TELEHUB_MQTT_EMBEDDED_PORT=$${TELEHUB_MQTT_EMBEDDED_PORT:-$$($(PYTHON) scripts/dev_mqtt_port.py)} \
		.venv/bin/telehub serve

test: .venv/.synced-dev  ## lint, type-check, build the docs and the whole test suite
	.venv/bin/python scripts/gen_proto.py --check
	.venv/bin/ruff check src tests bench scripts docs/hooks
	.venv/bin/ruff format --check src tests bench scripts docs/hooks
	.venv/bin/mypy
	$(MKDOCS)
	.venv/bin/pytest

docs: .venv/.synced-dev  ## the documentation site into site/ (mkdocs-material, --strict)
	$(MKDOCS)

proto: .venv/.synced-dev  ## regenerate the gRPC code in src/telehub/v1 from proto/
	.venv/bin/python scripts/gen_proto.py

bench: .venv/.synced-dev  ## the ingest/query benchmark on SQLite and PostgreSQL
	.venv/bin/python bench/ingest_query.py

bench-mqtt: .venv/.synced-dev  ## MQTT ingest through the bridge vs the bare broker
	.venv/bin/python bench/mqtt_ingest.py

bench-fanout: .venv/.synced-dev  ## live WebSocket/SSE fan-out vs bare websockets/Starlette servers
	.venv/bin/python bench/fanout.py

bench-grpc: .venv/.synced-dev  ## gRPC Publish streams vs PublishBatch, REST batches and the raw driver
	.venv/bin/python bench/grpc_ingest.py

bench-clients: .venv/.synced-dev  ## Client, AsyncClient and bare requests.post, single-reading posts
	.venv/bin/python bench/clients.py

bench-cli: .venv/.synced-dev  ## telehub --help and devices list start-up vs bare typer+requests+rich imports
	.venv/bin/python bench/cli_startup.py

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache site

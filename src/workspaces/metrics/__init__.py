"""What the service tells Prometheus: `process` counts what happens in each server process as
it happens (requests, refusals, email attempts, connections); `database` reads the facts every
instance shares (schema, outbox) from the database when scraped. GET /metrics (web/metrics.py)
serves both; `workspaces db status --format prometheus` prints the schema part."""

# Set by `serve --workers N` for its workers: where each writes its counts (see process.py).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

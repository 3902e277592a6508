"""The DuckDB results registry: schema and migrations, ingest, queries and comparisons."""

from knowrl.registry._db import RegistryError, latest, migrate, reader, writer
from knowrl.registry._ingest import IngestReport, ingest, load_reference, run_status, statuses_by_spec

__all__ = [
    "IngestReport",
    "RegistryError",
    "ingest",
    "latest",
    "load_reference",
    "migrate",
    "reader",
    "run_status",
    "statuses_by_spec",
    "writer",
]

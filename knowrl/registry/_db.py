"""The DuckDB registry file: one writer at a time, readers read-only, schema migrations as SQL files.

DuckDB lets one process hold a database read-write. Writers that find the file
locked wait (saying so) up to a timeout and then fail clearly; every change is
a transaction, so a writer killed mid-way leaves no partial job behind.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

from knowrl._errors import KnowrlError

MIGRATIONS = Path(__file__).resolve().parents[2] / "registry" / "migrations"


class RegistryError(KnowrlError):
    pass


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) from the project's registry/migrations/NNN_name.sql."""
    if not MIGRATIONS.is_dir():
        raise RegistryError(
            f"registry migrations not found at {MIGRATIONS}",
            hint="install knowrl from its source tree (pip install -e .)",
        )
    out = []
    for f in sorted(MIGRATIONS.glob("*.sql")):
        version = int(f.name.split("_", 1)[0])
        out.append((version, f.stem, f.read_text()))
    return out


def latest() -> int:
    return max(v for v, _, _ in migrations())


def migrate(con, target: int | None = None) -> int:
    """Bring the schema to `target` (default: latest), one transaction per migration; return the version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    for version, _, sql in migrations():
        if current < version <= (target or latest()):
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            current = version
    return current


@contextmanager
def writer(path: str | Path, *, timeout_s: float = 60.0, quiet: bool = False):
    """The single write connection, migrated to the latest schema."""
    import duckdb

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline, said = time.monotonic() + timeout_s, False
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise RegistryError(f"cannot open the registry {path}: {e}") from None
            if time.monotonic() > deadline:
                raise RegistryError(
                    f"the registry {path} is locked by another process for {timeout_s:.0f} s",
                    hint="wait for the other knowrl command to finish, then retry",
                ) from None
            if not said and not quiet:
                sys.stderr.write(f"waiting for the registry {path} (another process is writing)...\n")
                said = True
            time.sleep(0.2)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def reader(path: str | Path):
    """A read-only connection (writes are refused by DuckDB itself)."""
    import duckdb

    path = Path(path)
    if not path.exists():
        raise RegistryError(f"no registry at {path}", hint="run something first, or `knowrl ingest RUN_DIR`")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as e:
        raise RegistryError(
            f"cannot open the registry {path} read-only: {e}", hint="another process may be writing; retry in a moment"
        ) from None
    try:
        version = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        if version < latest():
            raise RegistryError(
                f"the registry {path} has schema {version}, this knowrl expects {latest()}",
                hint="any write (e.g. `knowrl ingest`) migrates it",
            )
        yield con
    finally:
        con.close()

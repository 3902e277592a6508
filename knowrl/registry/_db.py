"""The DuckDB registry file: one writer at a time, readers read-only, schema migrations as SQL files.

DuckDB lets one process hold a database read-write, and while it does no other
process may even read it. So writers hold the file only for one transaction,
readers and writers that find it held wait (saying so) up to a timeout, and a
writer about to reopen it first lets readers that are waiting in. Every change
is a transaction, so a writer killed mid-way leaves no partial job behind.
"""

from __future__ import annotations

import os
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


def _waiting(path: Path) -> Path:
    """The folder where readers waiting for `path` leave a mark (one file per process, touched while waiting)."""
    return path.parent / f".{path.name}.readers"


def _readers_waiting(path: Path, fresh_s: float = 2.0) -> bool:
    now = time.time()
    try:
        return any(now - m.stat().st_mtime < fresh_s for m in _waiting(path).iterdir())
    except OSError:  # no folder, or a mark removed as we looked
        return False


def check_database_file(path: Path) -> None:
    """Say what a registry path holds when it is not a DuckDB database (DuckDB's own error blames a lock)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise RegistryError(f"cannot read the registry {path}: {e.strerror or e}") from None
    if len(head) < 12 or head[8:12] != b"DUCK":  # every DuckDB file has its magic at byte 8
        if not head:
            what = "an empty file"
        elif head.startswith(b"SQLite format 3"):
            what = "an SQLite database"
        elif head.startswith(b"PAR1"):
            what = "a Parquet file"
        elif all(32 <= b < 127 or b in (9, 10, 13) for b in head):
            what = f"a text file (it begins {head.decode()[:12]!r})"
        else:
            what = "some other binary file"
        raise RegistryError(
            f"{path} is not a DuckDB database: it is {what}",
            hint="point --registry (or registry.path) at a knowrl registry, or move this file away and re-ingest",
        )


def _connect(path: Path, *, read_only: bool, timeout_s: float, quiet: bool, config: dict | None = None):
    """Open the file, waiting (bounded, saying so once) while another process holds it."""
    import duckdb

    deadline, said, mark = time.monotonic() + timeout_s, False, None
    try:
        while True:
            if not read_only and _readers_waiting(path) and time.monotonic() < deadline:
                time.sleep(0.05)  # a writer between two transactions lets waiting readers in first
                continue
            try:
                return duckdb.connect(str(path), read_only=read_only, config=config or {})
            except duckdb.IOException as e:
                if path.exists():
                    check_database_file(path)
                if "lock" not in str(e).lower():
                    raise RegistryError(f"cannot open the registry {path}: {str(e).splitlines()[0]}") from None
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"the registry {path} has been held by another process for {timeout_s:.0f} s",
                        hint="wait for the other knowrl command (an ingest, a run) to finish, then retry",
                    ) from None
            if read_only:
                mark = _waiting(path) / str(os.getpid())
                mark.parent.mkdir(exist_ok=True)
                mark.touch()
            if not said and not quiet:
                sys.stderr.write(f"waiting for the registry {path} (another process is writing)...\n")
                said = True
            time.sleep(0.05 if read_only else 0.2)
    finally:
        if mark is not None:
            mark.unlink(missing_ok=True)


@contextmanager
def writer(path: str | Path, *, timeout_s: float = 60.0, quiet: bool = False):
    """The single write connection, migrated to the latest schema. Hold it only while writing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        check_database_file(path)
    con = _connect(path, read_only=False, timeout_s=timeout_s, quiet=quiet)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def reader(path: str | Path, *, timeout_s: float = 60.0, sandbox: bool = False):
    """A read-only connection (writes are refused by DuckDB itself), waiting out a writer for up to `timeout_s`.

    `sandbox` also closes it to the file system and the network (no `read_text`, `glob`, `ATTACH`, HTTP),
    locked so that no statement can reopen them: the surface `knowrl query` offers.
    """
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"no registry at {path}", hint="run something first, or `knowrl ingest RUN_DIR`")
    check_database_file(path)
    config = {"enable_external_access": False, "lock_configuration": True} if sandbox else None
    con = _connect(path, read_only=True, timeout_s=timeout_s, quiet=False, config=config)
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

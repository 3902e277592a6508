"""The DuckDB registry file: one writer at a time, readers read-only, schema migrations as SQL files.

DuckDB lets one process hold a database read-write, and while it does no other
process may even read it. So readers and writers that find the file held wait
(saying so, leaving a mark) up to a timeout, and a writer gives the file up
between two transactions as soon as it sees such a mark. Every change is a
transaction, so a writer killed mid-way leaves no partial job behind.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from knowrl._errors import KnowrlError


class RegistryError(KnowrlError):
    pass


def package_data(folder: str):
    """A data folder shipped inside knowrl.registry (migrations/, reference/): found in a wheel as in a checkout."""
    from importlib.resources import files

    return files("knowrl.registry") / folder


@functools.cache
def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) from the package's migrations/NNN_name.sql, in version order."""
    folder = package_data("migrations")
    found = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    if not found:
        raise RegistryError(
            f"knowrl's registry migrations are missing from {folder}",
            hint="reinstall knowrl: its package data (knowrl/registry/migrations/*.sql) was left out",
        )
    return [(int(f.name.split("_", 1)[0]), f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in found]


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


def _marks(path: Path) -> Path:
    """The folder where processes waiting for `path` leave a mark: `reader-<pid>` or `writer-<pid>`, touched
    while they wait and removed once they are in."""
    return path.parent / f".{path.name}.waiting"


def _waiting(path: Path, kinds: tuple[str, ...], fresh_s: float = 2.0) -> bool:
    """Whether another process is waiting for `path` now (a mark left by a killed one goes stale in `fresh_s`)."""
    now, mine = time.time(), str(os.getpid())
    try:
        return any(
            m.name.partition("-")[0] in kinds and m.name.partition("-")[2] != mine and now - m.stat().st_mtime < fresh_s
            for m in _marks(path).iterdir()
        )
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


def _connect(
    path: Path,
    *,
    read_only: bool,
    timeout_s: float,
    quiet: bool,
    config: dict | None = None,
    handing_over: bool = False,
):
    """Open the file, waiting (bounded, saying so once) while another process holds it.

    A writer lets readers that are waiting in first; one that has just given the
    file up (`handing_over`) lets waiting writers in first too, so that two long
    ingests take turns instead of one of them timing out.
    """
    import duckdb

    deadline, said = time.monotonic() + timeout_s, False
    mark = _marks(path) / f"{'reader' if read_only else 'writer'}-{os.getpid()}"
    defer_to = () if read_only else ("reader", "writer") if handing_over else ("reader",)
    try:
        while True:
            if defer_to and _waiting(path, defer_to) and time.monotonic() < deadline:
                time.sleep(0.02)
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
            defer_to = () if read_only else ("reader",)  # in line now: our own mark keeps our turn
            mark.parent.mkdir(exist_ok=True)
            mark.touch()
            if not said and not quiet:
                sys.stderr.write(f"waiting for the registry {path} (another process is writing)...\n")
                said = True
            time.sleep(0.05)
    finally:
        mark.unlink(missing_ok=True)


class WriteSession:
    """The one write connection across many changes (an ingest's jobs), handed over while others wait.

    Closing the file after every job's transaction let readers in between, but
    each commit and reopen cost (an ingest took 2.3-2.6x DuckDB's bulk load);
    holding the file throughout shuts readers out for as long as the ingest
    lasts. So the session keeps the file open and one transaction going across
    changes, and between two of them commits and gives the file up only when a
    reader or another writer has left its waiting mark; then it reopens it.
    Each change still lands whole or not at all.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0, quiet: bool = False) -> None:
        self.path, self.timeout_s, self.quiet = Path(path), timeout_s, quiet
        self.con, self.open_transaction = None, False
        self.handovers = 0
        """How often the file was given up to a waiting process (the bench reports it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            check_database_file(self.path)

    def connection(self):
        """The open connection, outside any transaction (the file handed over first if someone waits)."""
        waiting = self.con is not None and _waiting(self.path, ("reader", "writer"))
        if waiting:
            self.commit()
            self.con.close()
            self.con = None
            self.handovers += 1
        elif self.open_transaction:
            self.commit()
        if self.con is None:
            self.con = _connect(  # waiting after a handover is expected: not announced each time
                self.path,
                read_only=False,
                timeout_s=self.timeout_s,
                quiet=self.quiet or self.handovers > 0,
                handing_over=waiting,
            )
            migrate(self.con)
        return self.con

    def transaction(self):
        """The connection inside the session's transaction, for one more change: the transaction goes on from
        the last change unless someone waits, in which case it is committed and the file handed over first."""
        if self.open_transaction and not _waiting(self.path, ("reader", "writer")):
            return self.con
        con = self.connection()
        con.execute("BEGIN TRANSACTION")
        self.open_transaction = True
        return con

    def commit(self) -> None:
        if self.open_transaction:
            self.open_transaction = False
            self.con.execute("COMMIT")

    def close(self, *, commit: bool = True) -> None:
        """Commit what is pending (or, after an error, roll it back) and close the file."""
        if self.con is None:
            return
        try:
            if self.open_transaction and commit:
                self.commit()
            elif self.open_transaction:
                self.open_transaction = False
                self.con.execute("ROLLBACK")
        finally:
            self.con.close()
            self.con = None

    def __enter__(self) -> WriteSession:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.close(commit=kind is None)


@contextmanager
def writer(path: str | Path, *, timeout_s: float = 60.0, quiet: bool = False):
    """The single write connection, migrated to the latest schema. Hold it only while writing."""
    with WriteSession(path, timeout_s=timeout_s, quiet=quiet) as session:
        yield session.connection()


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

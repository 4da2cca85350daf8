"""Backups for operators: a consistent copy of the SQLite users database and Redis' snapshot.

`flask --app wsgi backup DIR` and `flask --app wsgi restore-db FILE` (app/cli.py) call these.
The users database is copied with SQLite's online backup API, so the site can keep serving;
Redis is asked for a fresh RDB snapshot (BGSAVE), whose file is copied with the AOF beside it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy.engine import make_url

from .files import PRIVATE_DIR, private_dirs, private_file, private_tree, sqlite_file

USERS_FILE = "users.db"
REDIS_FOLDER = "redis"


class BackupError(Exception):
    """A part of the backup failed or could not be made; the message says why and what to do."""


@dataclass
class PartResult:
    """What happened to one part of the backup: ok, skipped (with the reason) or failed."""

    name: str
    status: str
    detail: str
    files: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """For the backup's MANIFEST.json."""
        return {"status": self.status, "detail": self.detail,
                "files": [str(path) for path in self.files]}


def sqlite_path(database_url: str) -> Path:
    """The file of an SQLite DATABASE_URL; BackupError for any other database or in-memory."""
    backend = make_url(database_url).get_backend_name()
    if backend != "sqlite":
        raise BackupError(
            f"{backend} databases are not backed up by this command: use the database's own "
            "tool, for PostgreSQL `pg_dump --format=custom --file=users.dump \"$DATABASE_URL\"` "
            "and `pg_restore --clean --if-exists --dbname=\"$DATABASE_URL\" users.dump` "
            "(docs/operations.md)")
    path = sqlite_file(database_url)
    if path is None:
        raise BackupError("the users database is an in-memory SQLite database: nothing on disk")
    return path


def _copy_sqlite(source: sqlite3.Connection, target: Path) -> int:
    """Copy an open database into `target` (a single file, rollback journal); return the users."""
    private_file(target)
    destination = sqlite3.connect(target)
    try:
        # The online backup API copies a consistent snapshot while other connections write.
        source.backup(destination)
        # The copy inherits WAL mode from the header: make it one self-contained file.
        destination.execute("PRAGMA journal_mode=DELETE")
        verdict = destination.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"the copy in {target} fails SQLite's integrity check: {verdict}")
        return destination.execute("SELECT count(*) FROM users").fetchone()[0]
    finally:
        destination.close()


def backup_users_db(database_url: str, target_dir: Path) -> PartResult:
    """Write a consistent copy of the SQLite users database to `target_dir/users.db`."""
    path = sqlite_path(database_url)
    if not path.is_file():
        raise BackupError(f"the users database {path} does not exist")
    target = target_dir / USERS_FILE
    # mode=rw: a wrong path fails instead of creating an empty database.
    source = sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True)
    try:
        users = _copy_sqlite(source, target)
    except sqlite3.Error as exc:
        raise BackupError(f"could not copy {path}: {exc}") from exc
    finally:
        source.close()
    return PartResult("users database", "ok", f"{users} users from {path}", [target])


def restore_users_db(backup_file: Path, database_url: str) -> tuple[int, Path | None]:
    """Replace the SQLite users database with `backup_file`; return (users, safety copy)."""
    path = sqlite_path(database_url)
    try:
        source = sqlite3.connect(Path(backup_file).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            verdict = source.execute("PRAGMA integrity_check").fetchone()[0]
            users = source.execute("SELECT count(*) FROM users").fetchone()[0]
        except sqlite3.Error as exc:
            raise BackupError(f"{backup_file} is not a users database backup: {exc}") from exc
        if verdict != "ok":
            raise BackupError(f"{backup_file} fails SQLite's integrity check: {verdict}")
        safety = None
        if path.is_file() and path.stat().st_size:
            # Keep what is being replaced, in case the wrong file was restored.
            safety = path.with_name(f"{path.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
            current = sqlite3.connect(path)
            try:
                _copy_sqlite_any(current, safety)
            finally:
                current.close()
        private_dirs(path.parent)
        private_file(path)
        destination = sqlite3.connect(path)
        try:
            # Through SQLite, not a file copy: WAL files and open connections stay consistent.
            source.backup(destination)
            destination.execute("PRAGMA journal_mode=WAL")
        finally:
            destination.close()
            source.close()
    except sqlite3.Error as exc:
        raise BackupError(f"could not restore {backup_file} into {path}: {exc}") from exc
    return users, safety


def _copy_sqlite_any(source: sqlite3.Connection, target: Path) -> None:
    """Copy a database that may not be a valid users database (the one being replaced)."""
    private_file(target)
    destination = sqlite3.connect(target)
    try:
        source.backup(destination)
    finally:
        destination.close()


def _persistence(client) -> dict:
    """INFO persistence."""
    return client.info("persistence")


def _wait(condition, timeout: float, what: str) -> None:
    """Poll `condition` every 0.1 s; BackupError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BackupError(f"Redis did not finish {what} within {timeout:.0f} s")
        time.sleep(0.1)


def redis_snapshot(client, timeout: float = 300.0) -> None:
    """Ask Redis for a fresh RDB snapshot (BGSAVE) and wait until it is on disk."""
    while True:
        before = _persistence(client)
        counter = before.get("rdb_saves")  # Redis 7+: snapshots since start-up
        if counter is None:
            # Older Redis: LASTSAVE has one-second resolution, so start in a later second.
            last = client.lastsave()
            _wait(lambda: client.time()[0] > last.timestamp(), 5, "a clock tick")
        try:
            # SCHEDULE: if an AOF rewrite is running, the snapshot starts right after it.
            client.bgsave(schedule=True)
            break
        except redis.exceptions.ResponseError as exc:
            if "already in progress" not in str(exc):
                raise
            # Someone else's snapshot started before our call: let it end, then take ours.
            _wait(lambda: not _persistence(client)["rdb_bgsave_in_progress"], timeout,
                  "the snapshot already in progress")

    def saved() -> bool:
        """Our snapshot is on disk (none running, and the count or time moved on)."""
        info = _persistence(client)
        if info["rdb_bgsave_in_progress"]:
            return False
        if counter is not None:
            return info.get("rdb_saves", 0) > counter
        return client.lastsave() > last

    _wait(saved, timeout, "BGSAVE")
    status = _persistence(client).get("rdb_last_bgsave_status")
    if status != "ok":
        raise BackupError(f"Redis' BGSAVE failed (rdb_last_bgsave_status: {status}); "
                          "see the Redis log (disk full? permissions?)")


def backup_redis(client, target_dir: Path, timeout: float = 300.0) -> PartResult:
    """Snapshot Redis and copy its RDB file (and AOF) into `target_dir/redis/`."""
    try:
        settings = {}
        for name in ("dir", "dbfilename", "appendonly", "appenddirname", "appendfilename"):
            settings.update(client.config_get(name))
    except redis.exceptions.ResponseError as exc:
        return PartResult(
            "redis", "skipped",
            f"this Redis user may not read Redis' settings ({exc}). The app's ACL user is "
            "rightly refused CONFIG: run the backup with --redis-url redis://admin:<password>@"
            "host:port/0 (a user allowed CONFIG GET, BGSAVE, LASTSAVE and INFO), or pass "
            "--no-redis and back up Redis' data directory on its own host")
    data_dir = Path(settings["dir"])
    rdb = data_dir / settings["dbfilename"]
    if not data_dir.is_dir() or not os.access(data_dir, os.R_OK | os.X_OK):
        return PartResult(
            "redis", "skipped",
            f"Redis keeps its files in {data_dir} on its own machine, which is not readable "
            "here (Redis runs on another host or in a container). Run the backup on Redis' "
            "host, or there: redis-cli BGSAVE, then copy "
            f"{rdb} (docs/operations.md, Backups)")
    redis_snapshot(client, timeout)
    # The file must be the snapshot just written, not a same-named file of another machine.
    lastsave = client.lastsave().timestamp()
    if not rdb.is_file() or rdb.stat().st_mtime < lastsave - 2:
        return PartResult("redis", "skipped",
                          f"{rdb} is not the snapshot Redis just wrote (Redis runs on another "
                          "host?): run the backup on Redis' host")
    folder = target_dir / REDIS_FOLDER
    folder.mkdir(mode=PRIVATE_DIR)
    files = [Path(shutil.copy2(rdb, folder / rdb.name))]
    detail = f"snapshot {rdb.name} ({rdb.stat().st_size} bytes)"
    if settings.get("appendonly") == "yes":
        files.append(_copy_aof(client, data_dir, settings, folder))
        detail += f" and the AOF ({files[-1].name})"
    private_tree(folder)  # copy2 and copytree keep Redis' own modes
    return PartResult("redis", "ok", f"{detail} from {data_dir}", files)


def _copy_aof(client, data_dir: Path, settings: dict, folder: Path) -> Path:
    """Copy the AOF (Redis 7: its folder of base + incremental files + manifest)."""
    name = settings.get("appenddirname") or settings.get("appendfilename") or "appendonly.aof"
    source = data_dir / name
    for _ in range(5):
        # A rewrite replaces the files the manifest names: copy between rewrites.
        _wait(lambda: not _persistence(client)["aof_rewrite_in_progress"], 300, "an AOF rewrite")
        target = folder / name
        try:
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
            return target
        except (FileNotFoundError, shutil.Error):
            shutil.rmtree(target, ignore_errors=True)
            time.sleep(0.5)
    raise BackupError(f"could not copy the AOF in {source}: it kept changing")

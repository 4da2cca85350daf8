"""Owner-only files and folders: the users database, the development secret, backups.

The umask decides what `open` and `mkdir` give by default (0644 and 0755 under the common
0022), so these are created with explicit modes instead: 0600 files, 0700 folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dirs(path: Path) -> Path:
    """Create `path` and each missing parent as an owner-only folder; existing ones are kept."""
    path = Path(path)
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            # The mode is masked by the umask, which can only take bits away from 0700.
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # another worker starting at the same moment made it
    return path


def private_file(path: Path) -> bool:
    """Create `path` empty and owner-only unless it exists; True when this call created it."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def private_tree(root: Path) -> None:
    """Make every folder under `root` (itself included) 0700 and every file 0600."""
    os.chmod(root, PRIVATE_DIR)
    for folder, folders, files in os.walk(root):
        for name in folders:
            os.chmod(os.path.join(folder, name), PRIVATE_DIR)
        for name in files:
            os.chmod(os.path.join(folder, name), PRIVATE_FILE)


def sqlite_file(database_url: str) -> Path | None:
    """The file of an SQLite URL; None for another database or an in-memory one."""
    url = make_url(database_url)
    database = url.database or ""
    if (url.get_backend_name() != "sqlite" or database in ("", ":memory:")
            or url.query.get("mode") == "memory"):
        return None
    return Path(database)


def private_sqlite(database_url: str) -> None:
    """Create an SQLite users database's file owner-only before SQLite creates it.

    SQLite gives its -wal and -shm files the database file's mode, so they follow. A folder
    that does not exist or cannot be written is left for SQLite to report.
    """
    path = sqlite_file(database_url)
    if path is None or not path.parent.is_dir():
        return
    try:
        private_file(path)
    except OSError:
        pass

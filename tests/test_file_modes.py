"""Operators' files are owner-only whatever the umask: the SQLite users database (and its WAL
files), the generated development secret, the folders the app creates for them, and backups."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import app as app_package
from app import create_app
from app.config import DEV_SECRET_FILE, TestConfig, load_config
from app.extensions import db

from .helpers import SignupActions, only_backup, signup_and_verify

EMAIL = "ada@example.com"


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request):
    """A permissive umask for the test (0o000 would make files 0666 and folders 0777)."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    """The permission bits of `path`."""
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path) -> dict[str, int]:
    """relative path -> permission bits, for `root` and everything under it."""
    found = {".": mode(root)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = mode(path)
    return found


def owner_only(found: dict[str, int], root: Path) -> dict[str, int]:
    """The entries of `found` that are not 0700 folders or 0600 files (empty when all are)."""
    return {name: oct(bits) for name, bits in found.items()
            if bits != (0o700 if (root / name).is_dir() else 0o600)}


def close(app) -> None:
    """Close the app's database connections."""
    app.extensions["pending"].close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_users_database_and_its_wal_files_are_owner_only(umask, make_app, smtp, tmp_path):
    """DATABASE_URL in any folder: the database, -wal and -shm files are 0600."""
    folder = tmp_path / "data"
    folder.mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{folder / 'users.db'}")
    signup_and_verify(app, smtp, EMAIL)  # writes: SQLite opens its WAL and shared memory
    names = {path.name for path in folder.iterdir()}
    assert {"users.db", "users.db-wal", "users.db-shm"} <= names, names
    assert owner_only(modes(folder), folder) == {".": oct(0o777 & ~umask)}  # the test's folder


def test_default_instance_folder_database_and_secret_are_owner_only(umask, smtp, tmp_path,
                                                                    monkeypatch):
    """No DATABASE_URL and no SECRET_KEY (development): the instance folder the app creates is
    0700, instance/secret_key and instance/signup.db are 0600."""
    instance = tmp_path / "new" / "instance"
    monkeypatch.setattr(app_package, "INSTANCE_PATH", instance)
    overrides = {**TestConfig.values, "APP_ENV": "development", "SECRET_KEY": None,
                 "DATABASE_URL": None, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port}
    app = create_app(overrides)
    try:
        assert app.config["SECRET_KEY_GENERATED"]
        assert app.config["DATABASE_URL"] == f"sqlite:///{instance / 'signup.db'}"
        browser = SignupActions(app.test_client(), smtp)
        assert browser.signup(EMAIL).status_code == 303
        assert browser.verify(EMAIL, browser.code_for(EMAIL)).status_code == 303
        names = {path.name for path in instance.iterdir()}  # while SQLite keeps its WAL
        found = modes(tmp_path / "new")
    finally:
        close(app)
    assert {DEV_SECRET_FILE, "signup.db", "signup.db-wal", "signup.db-shm"} <= names, names
    assert owner_only(found, tmp_path / "new") == {}


def test_generated_secret_in_a_new_instance_folder_is_owner_only(umask, tmp_path):
    """load_config alone (the CLI, a worker) creates the instance folder 0700, the key 0600."""
    instance = tmp_path / "a" / "b" / "instance"
    load_config(environ={}, instance_path=instance)
    assert (instance / DEV_SECRET_FILE).is_file()
    assert owner_only(modes(tmp_path / "a"), tmp_path / "a") == {}


def test_backup_folders_and_files_are_owner_only(umask, make_app, smtp, tmp_path):
    """`backup DIR` (DIR and its parents new): every folder it creates 0700, users.db and
    MANIFEST.json 0600; so is what `restore-db` writes."""
    database = tmp_path / "data" / "users.db"
    database.parent.mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{database}")
    signup_and_verify(app, smtp, EMAIL)
    target = tmp_path / "backups" / "nightly"
    result = app.test_cli_runner().invoke(args=["backup", str(target), "--no-redis"])
    assert result.exit_code == 0, result.output
    backup = only_backup(target)
    assert {p.name for p in backup.iterdir()} == {"users.db", "MANIFEST.json"}
    assert owner_only(modes(tmp_path / "backups"), tmp_path / "backups") == {}

    restored = tmp_path / "restored" / "users.db"  # its folder does not exist yet
    other = make_app(DATABASE_URL=f"sqlite:///{restored}")
    result = other.test_cli_runner().invoke(args=["restore-db", str(backup / "users.db"),
                                                  "--yes"])
    assert result.exit_code == 0, result.output
    assert owner_only(modes(restored.parent), restored.parent) == {}


@pytest.mark.redis
def test_backup_of_redis_is_owner_only(umask, make_app, smtp, aof_redis, tmp_path):  # noqa: F811
    """The copied snapshot and AOF folder are 0600 files in 0700 folders, whatever modes
    Redis gave its own files."""
    app = make_app(REDIS_URL=aof_redis.url)
    assert SignupActions(app.test_client(), smtp).signup(EMAIL).status_code == 303
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    redis_copy = only_backup(tmp_path / "backups") / "redis"
    assert (redis_copy / "dump.rdb").is_file() and (redis_copy / "appendonlydir").is_dir()
    assert owner_only(modes(tmp_path / "backups"), tmp_path / "backups") == {}

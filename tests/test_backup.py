"""`flask --app wsgi backup DIR` and `restore-db FILE`: a lost users database comes back from the
backup, and Redis' copied snapshot (or AOF) restores pending registrations with their codes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from app.extensions import db

from .helpers import PASSWORD, RedisServer, SignupActions, free_port, only_backup, signup_and_verify

USERS = ("ada@example.com", "grace@example.com")
PENDING = "alan@example.com"


def can_sign_in(app, smtp, email: str) -> bool:
    """True when a new browser can sign in as `email` and see its account page."""
    browser = SignupActions(app.test_client(), smtp)
    response = browser.login(email, PASSWORD)
    if response.status_code not in (302, 303):
        return False
    return email in browser.client.get("/account").text


def forget_database(app, database: Path) -> None:
    """Close the app's connections and delete the database file and its WAL files."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


def test_backup_delete_restore_the_users_are_back(make_app, smtp, tmp_path):
    """Two users; backup; the database is deleted; restore-db; both sign in again."""
    database = tmp_path / "users.db"
    url = f"sqlite:///{database}"
    app = make_app(DATABASE_URL=url)
    for email in USERS:
        signup_and_verify(app, smtp, email)

    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    folder = only_backup(tmp_path / "backups")
    copy = folder / "users.db"
    assert "users database: ok (2 users" in result.output
    assert f"restore-db {copy}" in result.output
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["parts"]["users database"]["status"] == "ok"
    # One self-contained file (no WAL), readable by plain sqlite3.
    with sqlite3.connect(copy) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        emails = {row[0] for row in check.execute("SELECT email FROM users")}
    assert emails == set(USERS)

    forget_database(app, database)
    fresh = make_app(DATABASE_URL=url)  # starts on a new, empty database
    assert not can_sign_in(fresh, smtp, USERS[0])

    result = fresh.test_cli_runner().invoke(args=["restore-db", "--yes", str(copy)])
    assert result.exit_code == 0, result.output
    assert "restored 2 users" in result.output
    assert "kept as" in result.output  # the empty database it replaced
    for email in USERS:
        assert can_sign_in(fresh, smtp, email), email


def test_backup_while_the_site_writes_is_consistent(make_app, smtp, tmp_path):
    """A backup taken between two signups holds exactly the users verified before it."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'users.db'}")
    signup_and_verify(app, smtp, USERS[0])
    # An open write transaction elsewhere does not stop the backup nor leak into it.
    writer = sqlite3.connect(tmp_path / "users.db")
    writer.execute("BEGIN")
    writer.execute("UPDATE users SET name = 'uncommitted'")
    try:
        result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b"), "--no-redis"])
    finally:
        writer.rollback()
        writer.close()
    assert result.exit_code == 0, result.output
    signup_and_verify(app, smtp, USERS[1])
    with sqlite3.connect(only_backup(tmp_path / "b") / "users.db") as check:
        rows = check.execute("SELECT email, name FROM users").fetchall()
    assert rows == [(USERS[0], "")]


def test_restore_db_asks_first(make_app, smtp, tmp_path):
    """Without --yes, restore-db asks; answering no changes nothing."""
    database = tmp_path / "users.db"
    app = make_app(DATABASE_URL=f"sqlite:///{database}")
    signup_and_verify(app, smtp, USERS[0])
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b"), "--no-redis"])
    assert result.exit_code == 0, result.output
    signup_and_verify(app, smtp, USERS[1])
    copy = only_backup(tmp_path / "b") / "users.db"
    result = app.test_cli_runner().invoke(args=["restore-db", str(copy)], input="n\n")
    assert result.exit_code != 0
    assert "Replace the users database" in result.output
    assert can_sign_in(app, smtp, USERS[1])


def test_restore_db_refuses_a_file_that_is_not_a_backup(make_app, tmp_path):
    """A file without a users table is refused and the database is left alone."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'users.db'}")
    bogus = tmp_path / "bogus.db"
    with sqlite3.connect(bogus) as other:
        other.execute("CREATE TABLE t (x)")
    result = app.test_cli_runner().invoke(args=["restore-db", "--yes", str(bogus)])
    assert result.exit_code == 1
    assert "not a users database backup" in result.output


def test_backup_says_other_databases_need_their_own_tool(make_app, tmp_path):
    """With PostgreSQL (or any non-SQLite URL) the database part says to use pg_dump; exit 1."""
    url = f"postgresql+psycopg2://signup:secret@127.0.0.1:{free_port()}/signup"
    app = make_app(DATABASE_URL=url, SQLALCHEMY_DATABASE_URI=url)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b"), "--no-redis"])
    assert result.exit_code == 1
    assert "users database: FAILED" in result.output
    assert "pg_dump" in result.output
    assert "secret" not in result.output
    result = app.test_cli_runner().invoke(args=["restore-db", "--yes", str(tmp_path / "x")])
    assert result.exit_code != 0


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgresql_url_uses_the_installed_driver(scheme, tmp_path):
    """DATABASE_URL=postgresql://… (or postgres://) selects psycopg2, the driver installed."""
    from app.config import load_config

    config = load_config(environ={"DATABASE_URL": f"{scheme}://u:p@db.example/signup"},
                         instance_path=tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u:p@db.example/signup"


def test_backup_of_a_missing_database_fails_clearly(make_app, tmp_path):
    """A database file that vanished: FAILED and exit 1, not an empty backup."""
    database = tmp_path / "users.db"
    app = make_app(DATABASE_URL=f"sqlite:///{database}")
    forget_database(app, database)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b"), "--no-redis"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not database.exists(), "the backup must not create an empty database"


# -- Redis ------------------------------------------------------------------------------------
def pending_keys(server: RedisServer) -> list[bytes]:
    """The pending-registration keys in a server."""
    return list(server.client().scan_iter(match="signup:pending:*"))


def verify_on(make_app, smtp, server: RedisServer, code: str) -> None:
    """On an app using `server`, a browser that did not sign up verifies with code + password."""
    app = make_app(REDIS_URL=server.url)
    browser = SignupActions(app.test_client(), smtp)
    response = browser.verify(PENDING, code, password=PASSWORD)
    assert response.status_code in (302, 303), response.text[:500]
    assert response.headers["Location"].endswith("/account")


@pytest.mark.redis
def test_backup_copies_redis_and_the_snapshot_restores_pending(make_app, smtp, aof_redis,
                                                               tmp_path):
    """backup BGSAVEs and copies dump.rdb and the AOF folder; a Redis started from either
    has the pending registration (with its TTL), and its emailed code verifies."""
    app = make_app(REDIS_URL=aof_redis.url)
    browser = SignupActions(app.test_client(), smtp)
    assert browser.signup(PENDING).status_code == 303
    code = browser.code_for(PENDING)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    assert "redis: ok (snapshot dump.rdb" in result.output
    folder = only_backup(tmp_path / "backups") / "redis"
    assert (folder / "dump.rdb").is_file()
    assert list((folder / "appendonlydir").glob("*.manifest"))
    aof_redis.cleanup()  # Redis and its data are lost

    # 1. From the snapshot: started with AOF off so Redis reads dump.rdb.
    restored = RedisServer(directory=str(tmp_path / "from-rdb"))
    Path(restored.dir).mkdir()
    shutil.copy2(folder / "dump.rdb", Path(restored.dir) / "dump.rdb")
    restored.start()
    try:
        keys = pending_keys(restored)
        assert len(keys) == 1
        assert 0 < restored.client().ttl(keys[0]) <= 86400
    finally:
        restored.cleanup()

    # 2. From the AOF folder, with AOF on: the registration is there and the code works.
    restored = RedisServer(directory=str(tmp_path / "from-aof"),
                           extra_args=["--appendonly", "yes"])
    shutil.copytree(folder, restored.dir)
    Path(restored.dir, "dump.rdb").unlink()
    restored.start()
    try:
        assert len(pending_keys(restored)) == 1
        verify_on(make_app, smtp, restored, code)
        assert pending_keys(restored) == []
    finally:
        restored.cleanup()


@pytest.mark.redis
def test_backup_waits_for_a_snapshot_already_running(make_app, aof_redis, tmp_path):
    """A BGSAVE in progress when the backup starts: the backup waits and takes its own."""
    client = aof_redis.client()
    for n in range(5):
        client.set(f"signup:filler:{n}", "x")
    # Redis' own debugging knob: each key takes 0.1 s to save, so a snapshot lasts 0.5 s.
    client.config_set("rdb-key-save-delay", 100_000)
    saves_before = client.info("persistence")["rdb_saves"]
    client.bgsave()
    assert client.info("persistence")["rdb_bgsave_in_progress"] == 1
    app = make_app(REDIS_URL=aof_redis.url)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert client.info("persistence")["rdb_saves"] == saves_before + 2  # theirs, then ours
    client.config_set("rdb-key-save-delay", 0)
    assert (only_backup(tmp_path / "b") / "redis" / "dump.rdb").is_file()


def test_backup_with_redis_down_is_incomplete(make_app, tmp_path):
    """Redis unreachable: the users database is still copied, Redis FAILED, exit 1."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'users.db'}")
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b"), "--redis-url", url])
    assert result.exit_code == 1
    assert "users database: ok" in result.output
    assert "redis: FAILED" in result.output
    assert "INCOMPLETE" in result.output
    assert (only_backup(tmp_path / "b") / "users.db").is_file()


def test_backup_with_memory_store_has_no_redis_part(make_app, tmp_path):
    """REDIS_URL=memory://: nothing to snapshot, said plainly; exit 0."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'users.db'}")
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "memory://" in result.output

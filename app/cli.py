"""`flask --app wsgi` commands: init-db, pending stats|cleanup, users delete,
check-redis, backup, restore-db."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import redis
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .backup import (BackupError, PartResult, backup_redis, backup_users_db, restore_users_db,
                     sqlite_path)
from . import accounts
from .extensions import db
from .files import PRIVATE_DIR, private_dirs, private_file
from .forms import normalise_email
from .models import create_tables
from .pending import PendingRegistration, StoreUnavailable, build_manager, get_manager
from .pending.redis_client import build_client, client_from_config
from .security import new_code, new_link_token

pending_cli = AppGroup("pending", help="Inspect and tidy pending registrations.")
users_cli = AppGroup("users", help="Manage verified accounts.")


@click.command("init-db")
@with_appcontext
def init_db():
    """Create the users table if it does not exist, or add the columns an upgrade brought."""
    for name in create_tables():
        click.echo(f"added column users.{name}")
    click.echo(f"users table ready in {db.engine.url.render_as_string(hide_password=True)}")


@pending_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pending_stats(as_json):
    """Print how many registrations are pending, by backend."""
    stats = get_manager().get_stats()
    if as_json:
        click.echo(json.dumps(stats))
        return
    click.echo(f"backend in use: {stats['backend']}")
    click.echo(f"pending registrations: {stats['total']}")
    for backend, count in stats["by_backend"].items():
        click.echo(f"  {backend}: {'unreachable' if count is None else count}")


@pending_cli.command("cleanup")
def pending_cleanup():
    """Remove expired registrations and their leftover bookkeeping."""
    removed = get_manager().cleanup_expired()
    click.echo(f"removed {removed} expired entries")


@users_cli.command("delete")
@click.argument("email")
@click.option("--locale", default="en", show_default=True, type=click.Choice(["en", "tr"]),
              help="Language of the goodbye email.")
def users_delete(email, locale):
    """Delete the account of EMAIL: its row, every session of it; a goodbye email is sent.

    The address can sign up again afterwards. Exits 1 when no account uses it.
    """
    try:
        address = normalise_email(email)
    except ValueError:
        raise click.ClickException(f"{email!r} is not a valid email address") from None
    try:
        user = accounts.find_user(address)
        if user is None:
            raise click.ClickException(f"no account uses {address}")
        with current_app.test_request_context(base_url=current_app.config.get("APP_BASE_URL")
                                              or None):
            accounts.remove_user(user, locale)
    except accounts.DatabaseUnavailable as exc:
        raise click.ClickException(f"the users database is unavailable: {exc}") from None
    click.echo(f"deleted the account of {address}; every session of it has ended")


@click.command("check-redis")
@with_appcontext
def check_redis():
    """Run the eight connection checks against the configured Redis (keys under selftest:)."""
    config = current_app.config
    client = client_from_config(config)
    if client is None:
        click.echo("REDIS_URL is memory://: there is no Redis to check.")
        sys.exit(1)
    from .pending.redis_store import RedisStore

    # Every step asks this one client: the site's records (steps 2 and 8: counted, never
    # touched) and a test registration written under selftest: by a manager built from the
    # same config, with the fallback off (an outage must fail the check, not hide in memory).
    # The hash tag puts every selftest key in one cluster slot, so each step's script may
    # touch them together on a Redis Cluster too; the scan below still finds them by prefix.
    site = RedisStore(client, prefix=config["REDIS_KEY_PREFIX"])
    prefix = config["REDIS_KEY_PREFIX"] + "selftest:{selftest}:"
    manager = build_manager({**config, "REDIS_KEY_PREFIX": prefix, "PENDING_TTL_SECONDS": 120,
                             "PENDING_FALLBACK": False}, client=client)
    store = manager.fallback.primary
    email = "selftest@example.invalid"
    code, token = new_code(), new_link_token(manager.digester.address_id(email))
    promoted = []
    steps = []

    def step(title):
        def wrap(func):
            steps.append((title, func))
            return func
        return wrap

    @step("1. health check")
    def _():
        info = manager.health_check()
        assert info["redis"]["status"] == "healthy", "Redis did not answer PING"
        return f"latency {info['redis']['latency_ms']} ms, {info['redis']['used_memory_human']}"

    @step("2. pending registrations now")
    def _():
        return f"{site.count(time.time())} pending"

    @step("3. create a test registration")
    def _():
        now = time.time()
        aid = manager.address_id(email)
        manager.add_registration(PendingRegistration(
            email=email, password_hash="selftest", code_digest="", token_digest=
            manager.digester.token_digest(token), code_issued_at=now, created_at=now,
            updated_at=now, expires_at=now + 120, address_id=aid))
        ttl = client.ttl(store.key("pending", aid))
        assert 0 < ttl <= 120, f"unexpected TTL {ttl}"
        return f"stored with TTL {ttl} s"

    @step("4. read it back")
    def _():
        reg = manager.get_registration(email)
        assert reg is not None and reg.email == email, "could not read the registration"
        return "found"

    @step("5. update its code (resend)")
    def _():
        assert manager.update_verification_code(email, code, token), "update failed"
        return "new code stored as a digest"

    @step("6. verify the code and remove")
    def _():
        result = manager.verify_and_remove(email, code, promoted.append)
        assert result.status == "verified" and promoted, f"verification said {result.status}"
        assert manager.get_registration(email) is None, "record still there"
        return "verified and removed"

    @step("7. clean up expired entries")
    def _():
        return f"removed {manager.cleanup_expired()}"

    @step("8. final statistics")
    def _():
        return f"{site.count(time.time())} pending"

    failed = False
    try:
        for title, func in steps:
            try:
                detail = func()
            except (AssertionError, StoreUnavailable) as exc:
                click.echo(f"{title}: FAILED ({exc})")
                failed = True
                break
            click.echo(f"{title}: ok ({detail})")
    finally:
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=500))
            if keys:
                client.delete(*keys)
        except Exception:  # Redis is down: nothing was left behind that we could remove
            pass
        client.close()
    click.echo("check-redis: FAILED" if failed else "check-redis: all checks passed")
    sys.exit(1 if failed else 0)


def _new_backup_folder(directory: Path) -> Path:
    """DIRECTORY/signup-backup-<UTC time>/, never one that exists already."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    private_dirs(directory)
    for attempt in range(100):
        folder = directory / (f"signup-backup-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            folder.mkdir(mode=PRIVATE_DIR)
            return folder
        except FileExistsError:
            continue
    raise click.ClickException(f"could not create a new backup folder in {directory}")


def _backup_redis_part(config, redis_url, folder: Path, timeout: float) -> PartResult:
    """The Redis half of `backup`: the configured Redis, or the one --redis-url names."""
    if redis_url:
        client = build_client(redis_url, timeout=config["REDIS_TIMEOUT"])
    elif config["REDIS_CLUSTER_NODES"]:
        return PartResult("redis", "skipped", "a Redis Cluster is backed up node by node: run "
                                              "this with --no-db --redis-url redis://admin:"
                                              "<password>@<master>:<port>/0 for each master")
    else:
        client = client_from_config(config)
    if client is None:
        return PartResult("redis", "ok", "REDIS_URL is memory://: pending registrations live "
                                         "only in the running process, nothing to back up")
    try:
        return backup_redis(client, folder, timeout)
    except BackupError as exc:
        return PartResult("redis", "failed", str(exc))
    except redis.exceptions.RedisError as exc:
        return PartResult("redis", "failed", f"{exc.__class__.__name__}: {exc}")
    finally:
        client.close()


@click.command("backup")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--redis-url", metavar="URL",
              help="The Redis to snapshot, as a user allowed CONFIG GET, BGSAVE, LASTSAVE and "
                   "INFO (e.g. redis://admin:<password>@127.0.0.1:6379/0). Default: REDIS_URL.")
@click.option("--no-redis", is_flag=True, help="Back up the users database only.")
@click.option("--no-db", is_flag=True,
              help="Back up Redis only (a PostgreSQL users database is backed up with pg_dump).")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for Redis' snapshot.")
@with_appcontext
def backup(directory, redis_url, no_redis, no_db, timeout):
    """Copy the users database and Redis' snapshot into DIRECTORY/signup-backup-<time>/.

    Exits 0 when every part asked for was copied, 1 when one failed or had to be skipped.
    """
    from . import __version__

    config = current_app.config
    folder = _new_backup_folder(directory)
    results = []
    if not no_db:
        try:
            results.append(backup_users_db(db.engine.url.render_as_string(hide_password=False),
                                           folder))
        except BackupError as exc:
            results.append(PartResult("users database", "failed", str(exc)))
    if not no_redis:
        results.append(_backup_redis_part(config, redis_url, folder, timeout))
    manifest = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "version": __version__, "parts": {r.name: r.as_dict() for r in results}}
    private_file(folder / "MANIFEST.json")
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for result in results:
        label = "ok" if result.status == "ok" else result.status.upper()
        click.echo(f"{result.name}: {label} ({result.detail})")
    click.echo(f"backup written to {folder}")
    if any(result.name == "users database" and result.status == "ok" for result in results):
        click.echo(f"restore the users with: flask --app wsgi restore-db {folder / 'users.db'}")
    if any(result.status != "ok" for result in results):
        click.echo("backup: INCOMPLETE (see above)")
        sys.exit(1)


@click.command("restore-db")
@click.argument("backup_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace the database without asking.")
@with_appcontext
def restore_db(backup_file, yes):
    """Replace the SQLite users database with BACKUP_FILE (a backup's users.db).

    Stop the site first. What is replaced is kept beside it as <name>.before-restore-<time>.
    """
    url = db.engine.url.render_as_string(hide_password=False)
    try:
        path = sqlite_path(url)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    if not yes:
        click.confirm(f"Replace the users database {path} with {backup_file}?", abort=True)
    # Drop pooled connections: they would keep reading the file being replaced.
    db.session.remove()
    db.engine.dispose()
    try:
        users, safety = restore_users_db(backup_file, url)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.engine.dispose()
    if safety:
        click.echo(f"the database it replaced is kept as {safety}")
    click.echo(f"restored {users} users into {path}")


def init_app(app) -> None:
    """Register the commands."""
    app.cli.add_command(init_db)
    app.cli.add_command(pending_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(check_redis)
    app.cli.add_command(backup)
    app.cli.add_command(restore_db)

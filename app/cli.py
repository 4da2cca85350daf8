"""`flask --app wsgi` commands: init-db, pending stats|cleanup, check-redis."""

from __future__ import annotations

import json
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .extensions import db
from .pending import PendingRegistration, StoreUnavailable, get_manager
from .pending.manager import Limits, PendingRegistrationManager
from .security import Digester, new_code, new_link_token

pending_cli = AppGroup("pending", help="Inspect and tidy pending registrations.")


@click.command("init-db")
@with_appcontext
def init_db():
    """Create the users table if it does not exist."""
    db.create_all()
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


@click.command("check-redis")
@with_appcontext
def check_redis():
    """Run the eight connection checks against the configured Redis (keys under selftest:)."""
    config = current_app.config
    if config["REDIS_URL"].startswith("memory:") and not config["REDIS_SENTINELS"]:
        click.echo("REDIS_URL is memory://: there is no Redis to check.")
        sys.exit(1)
    from .pending.redis_store import RedisStore, build_client

    client = build_client(config["REDIS_URL"], timeout=config["REDIS_TIMEOUT"],
                          sentinels=config["REDIS_SENTINELS"],
                          sentinel_master=config["REDIS_SENTINEL_MASTER"])
    prefix = config["REDIS_KEY_PREFIX"] + "selftest:"
    store = RedisStore(client, prefix=prefix)
    manager = PendingRegistrationManager(
        store, Digester(config["SECRET_KEY"]), Limits(pending_ttl=120, cooldown=0),
        fallback_enabled=False)
    email = "selftest@example.invalid"
    code, token = new_code(), new_link_token()
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
        return f"{get_manager().get_stats()['total']} pending"

    @step("3. create a test registration")
    def _():
        now = time.time()
        aid = manager.address_id(email)
        manager.add_registration(PendingRegistration(
            email=email, password_hash="selftest", code_digest="", token_digest=
            manager.digester.token_digests(token)[0], code_issued_at=now, created_at=now,
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
        return f"{get_manager().get_stats()['total']} pending"

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
    click.echo("check-redis: FAILED" if failed else "check-redis: all checks passed")
    sys.exit(1 if failed else 0)


def init_app(app) -> None:
    """Register the commands."""
    app.cli.add_command(init_db)
    app.cli.add_command(pending_cli)
    app.cli.add_command(check_redis)

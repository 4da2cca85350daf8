"""The pending-registration store: manager construction from config, and `init_app`."""

from __future__ import annotations

from flask import current_app

from ..security import Digester
from .manager import Limits, PendingRegistrationManager
from .model import CodeCheck, PendingRegistration, StoreUnavailable
from .redis_client import client_from_config
from .resets import PasswordReset

__all__ = ["CodeCheck", "PasswordReset", "PendingRegistration", "PendingRegistrationManager",
           "StoreUnavailable", "build_manager", "get_manager", "init_app"]


def build_manager(config, *, client=None) -> PendingRegistrationManager:
    """Pick the backend (memory://, one Redis, Sentinel or a cluster) and build the manager.

    `client` is the Redis client to use, already built by `client_from_config(config)` (as
    `flask check-redis` does, to inspect the same Redis); by default one is built here.
    """
    primary = None
    client = client or client_from_config(config)
    if client is not None:
        from .redis_store import RedisStore

        primary = RedisStore(client, prefix=config["REDIS_KEY_PREFIX"])
    limits = Limits(
        pending_ttl=config["PENDING_TTL_SECONDS"], code_ttl=config["CODE_TTL_SECONDS"],
        code_max=config["CODE_MAX_ATTEMPTS"], registration_max=config["REGISTRATION_MAX_ATTEMPTS"],
        cooldown=config["RESEND_COOLDOWN_SECONDS"], per_hour=config["RESEND_MAX_PER_HOUR"],
        claim_seconds=config["CLAIM_SECONDS"], reset_ttl=config["RESET_TTL_SECONDS"],
        login_max_failures=config["LOGIN_MAX_FAILURES"],
        login_window=config["LOGIN_FAILURE_WINDOW_SECONDS"],
    )
    digester = Digester(config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"])
    return PendingRegistrationManager(primary, digester, limits,
                                      fallback_enabled=config["PENDING_FALLBACK"])


def init_app(app, manager: PendingRegistrationManager | None = None) -> None:
    """Build (or take) the manager, probe Redis once, and register it on the app."""
    manager = manager or build_manager(app.config)
    manager.start()
    app.extensions["pending"] = manager


def get_manager() -> PendingRegistrationManager:
    """The current app's manager."""
    return current_app.extensions["pending"]

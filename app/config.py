"""Configuration read from the environment (and `.env`), parsed and checked at start-up."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from limits import parse_many

from .files import private_dirs, private_file

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_PATH = PROJECT_ROOT / "instance"

TRUE_WORDS = {"on", "true", "yes", "1"}
FALSE_WORDS = {"off", "false", "no", "0"}
REDIS_SCHEMES = {"redis", "rediss", "unix", "memory"}
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
DEV_SECRET_FILE = "secret_key"
MIN_SECRET_LENGTH = 32  # bytes
MIN_SECRET_DISTINCT = 10  # distinct characters
DEFAULT_PORT = "5000"  # gunicorn.conf.py's and the Makefile's
GENERATE_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def _bool(name, raw):
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(name, f"expected on/off, true/false, yes/no or 1/0, got {raw!r}")


def _int(name, raw, minimum=0):
    try:
        value = int(raw.strip())
    except (ValueError, AttributeError):
        raise ConfigError(name, f"expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def _float(name, raw, minimum=0.0):
    try:
        value = float(raw.strip())
    except (ValueError, AttributeError):
        raise ConfigError(name, f"expected a number, got {raw!r}") from None
    if value <= minimum:
        raise ConfigError(name, f"must be greater than {minimum}, got {value}")
    return value


def _limit(name, raw):
    # "20/minute", "30 per 5 minutes", "10/hour;100/day", "10/hour, 100/day": checked by the
    # `limits` library that Flask-Limiter parses them with, so what passes here also works.
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(name, f"expected a rate limit such as '20/minute', got {raw!r}") from None
    return raw


def _redis_url(name, raw):
    scheme = urlsplit(raw).scheme.lower()
    if scheme not in REDIS_SCHEMES and scheme not in CLUSTER_SCHEMES:
        raise ConfigError(
            name, f"unknown scheme {scheme!r}: use redis://, rediss://, unix://, "
                  "redis+cluster://, rediss+cluster:// or memory://"
        )
    return raw


def _host_ports(name, raw):
    hosts = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        host, _, port = item.rpartition(":")
        if not host:
            raise ConfigError(name, f"expected host:port,host:port, got {raw!r}")
        hosts.append((host, _int(name, port, minimum=1)))
    return hosts


def split_cluster_url(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A `redis+cluster://[user:password@]host:port,host:port[/0][?query]` URL as the
    single-node URL of its first node (`redis://` or `rediss://`, which redis-py parses for
    the credentials and TLS settings every node shares) and the list of its nodes.

    Raises ConfigError naming REDIS_URL when it names no node or a node without a port.
    """
    scheme, _, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    nodes = _host_ports("REDIS_URL", hosts)
    if not nodes:
        raise ConfigError("REDIS_URL", f"a cluster URL names its nodes as host:port,host:port, "
                                       f"got {url!r}")
    host, port = nodes[0]
    single = f"{CLUSTER_SCHEMES[scheme.lower()]}://{userinfo}{at}{host}:{port}{slash}{tail}"
    return single, nodes


def _database_url(name, raw):
    if "://" not in raw:
        raise ConfigError(name, f"expected an SQLAlchemy URL such as sqlite:///path, got {raw!r}")
    scheme, rest = raw.split("://", 1)
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which is not installed: name the
    # driver requirements.txt brings (psycopg2). postgres:// is the spelling many hosts give.
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return raw


def _base_url(name, raw):
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(name, f"expected an http(s) URL such as https://example.com, got {raw!r}")
    return raw.rstrip("/")


# variable -> (default, parser). A default of None means "unset".
SETTINGS = {
    "APP_ENV": ("development", None),
    "SECRET_KEY": (None, None),
    "SECRET_KEY_FALLBACKS": ("", lambda n, r: [k.strip() for k in r.split(",") if k.strip()]),
    "APP_BASE_URL": (None, _base_url),
    "REDIS_URL": ("redis://localhost:6379/0", _redis_url),
    "REDIS_SENTINELS": ("", _host_ports),
    "REDIS_SENTINEL_MASTER": (None, None),
    "REDIS_CLUSTER_NODES": ("", _host_ports),
    "REDIS_KEY_PREFIX": ("signup:", None),
    "PENDING_FALLBACK": ("on", _bool),
    "DATABASE_URL": (None, _database_url),
    "MAIL_SERVER": (None, None),
    "MAIL_LOG_ONLY": ("off", _bool),
    "MAIL_PORT": ("25", lambda n, r: _int(n, r, minimum=1)),
    "MAIL_USE_TLS": ("off", _bool),
    "MAIL_USE_SSL": ("off", _bool),
    "MAIL_USERNAME": (None, None),
    "MAIL_PASSWORD": (None, None),
    "MAIL_DEFAULT_SENDER": (None, None),
    "MAIL_TIMEOUT": ("10", _float),
    "PENDING_TTL_SECONDS": ("86400", lambda n, r: _int(n, r, minimum=1)),
    "CODE_TTL_SECONDS": ("3600", lambda n, r: _int(n, r, minimum=1)),
    "CODE_MAX_ATTEMPTS": ("5", lambda n, r: _int(n, r, minimum=1)),
    "REGISTRATION_MAX_ATTEMPTS": ("10", lambda n, r: _int(n, r, minimum=1)),
    "RESEND_COOLDOWN_SECONDS": ("60", _int),
    "RESEND_MAX_PER_HOUR": ("5", lambda n, r: _int(n, r, minimum=1)),
    "PASSWORD_MIN_LENGTH": ("8", lambda n, r: _int(n, r, minimum=1)),
    "RATELIMIT_ENABLED": ("on", _bool),
    "RATELIMIT_SIGNUP": ("20/minute", _limit),
    "RATELIMIT_VERIFY": ("30 per 5 minutes", _limit),
    "RATELIMIT_RESEND": ("10/hour", _limit),
    "RATELIMIT_LOGIN": ("10/minute", _limit),
    "TRUSTED_PROXIES": ("0", _int),
    "SESSION_COOKIE_SECURE": (None, _bool),
    "HEALTH_TOKEN": (None, None),
    "MAX_CONTENT_LENGTH": ("65536", lambda n, r: _int(n, r, minimum=1024)),
    "RESET_TTL_SECONDS": ("3600", lambda n, r: _int(n, r, minimum=1)),
    "LOGIN_MAX_FAILURES": ("10", lambda n, r: _int(n, r, minimum=1)),
    "FAST_PATHS": ("on", _bool),
}


def weak_secret_reason(secret: str) -> str | None:
    """Why `secret` cannot be a production secret, or None when it passes the rule.

    The rule: at least MIN_SECRET_LENGTH bytes, at least MIN_SECRET_DISTINCT distinct
    characters, not a shorter run repeated (a string with a period of at most half its
    length: "ab" * 20, "changeme" * 5, "0123456789" * 4), and not the development prefix
    "dev". `secrets.token_hex(32)` passes; so does `secrets.token_urlsafe(32)`, unless it
    happens to begin with "dev" (1 in 262 144).
    """
    if len(secret.encode()) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} bytes"
    if secret.startswith("dev"):
        return "starts with 'dev' (a development value)"
    if len(set(secret)) < MIN_SECRET_DISTINCT:
        return f"fewer than {MIN_SECRET_DISTINCT} distinct characters"
    if any(secret[period:] == secret[:-period] for period in range(1, len(secret) // 2 + 1)):
        return "a shorter sequence repeated"
    return None


def _require_random(name: str, secret: str | None, purpose: str) -> None:
    """ConfigError naming `name` unless `secret` passes weak_secret_reason's rule."""
    reason = "not set" if not secret else weak_secret_reason(secret)
    if reason:
        raise ConfigError(
            name, f"{reason}; production needs a random {purpose}: at least "
                  f"{MIN_SECRET_LENGTH} bytes, {MIN_SECRET_DISTINCT} distinct characters, not a "
                  f"repeated pattern (generate one with: {GENERATE_SECRET})")


def link_base_url(base_url: str | None, environ) -> str:
    """Where emailed links point: APP_BASE_URL, else what `make run` serves.

    Never the request's Host or X-Forwarded-Host: a spoofed header would put another host in
    the site's own mail. PORT is read from the real environment only, as gunicorn.conf.py does.
    """
    if base_url:
        return base_url
    port = _int("PORT", (os.environ if environ is None else environ).get("PORT") or DEFAULT_PORT,
                minimum=1)
    return f"http://127.0.0.1:{port}"


def _check_production(config: dict) -> None:
    """The start-up checks of APP_ENV=production; ConfigError naming the first that fails."""
    _require_random("SECRET_KEY", config["SECRET_KEY"], "secret")
    for old in config["SECRET_KEY_FALLBACKS"]:
        # An old key still signs sessions and links, so it needs the same strength.
        _require_random("SECRET_KEY_FALLBACKS", old, "secret (each old key)")
    if not config["APP_BASE_URL"]:
        raise ConfigError("APP_BASE_URL", "production needs the public URL of the site")
    # /metrics and /health's detail tell which branch a request took (an address's state).
    _require_random("HEALTH_TOKEN", config["HEALTH_TOKEN"],
                    "token for /metrics and /health's detail (Authorization: Bearer …)")
    if not config["MAIL_SERVER"] and not config["MAIL_LOG_ONLY"]:
        raise ConfigError(
            "MAIL_SERVER", "production needs an SMTP server to send codes and links; to write "
                           "every email (codes and links included) to the log instead, set "
                           "MAIL_LOG_ONLY=on")
    if config["MAIL_SERVER"] and not config["MAIL_DEFAULT_SENDER"]:
        raise ConfigError("MAIL_DEFAULT_SENDER", "production needs a sender when MAIL_SERVER is set")


def read_environment(environ=None, dotenv_path=None):
    """Merge `.env` under the real environment (the real environment wins)."""
    path = dotenv_path or PROJECT_ROOT / ".env"
    merged = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}
    merged.update(os.environ if environ is None else environ)
    return merged


def _dev_secret(instance_path: Path) -> str:
    """Generate the development secret once and keep it, so workers and restarts share it."""
    private_dirs(instance_path)
    path = instance_path / DEV_SECRET_FILE
    # Created exclusively: when several gunicorn workers start together, exactly one writes it.
    if private_file(path):
        path.write_text(secrets.token_urlsafe(48))
    for _ in range(50):
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.01)
    raise ConfigError("SECRET_KEY", f"could not read the development secret in {path}")


def load_config(environ=None, overrides=None, instance_path: Path = INSTANCE_PATH):
    """Return the Flask config dict: every SPEC variable parsed, checked and given its default.

    `overrides` (from tests or a caller of `create_app`) win over the environment and are
    taken as already-typed values.
    """
    env = read_environment(environ)
    overrides = dict(overrides or {})
    config = {}
    for name, (default, parser) in SETTINGS.items():
        if name in overrides:
            config[name] = overrides.pop(name)
            continue
        raw = env.get(name)
        if raw is None or (raw == "" and default is None):
            raw = default
        if raw is None:
            config[name] = None
        else:
            config[name] = parser(name, raw) if parser else raw
    config.update(overrides)

    app_env = str(config["APP_ENV"]).lower()
    if app_env not in ("development", "production", "testing"):
        raise ConfigError("APP_ENV", f"expected development or production, got {app_env!r}")
    config["APP_ENV"] = app_env
    production = app_env == "production"
    config["SECRET_KEY_GENERATED"] = False
    if production:
        _check_production(config)
    elif not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _dev_secret(instance_path)
        config["SECRET_KEY_GENERATED"] = True

    if config["MAIL_LOG_ONLY"] and config["MAIL_SERVER"]:
        raise ConfigError("MAIL_LOG_ONLY", "on writes emails to the log instead of sending "
                                           "them: unset MAIL_SERVER, or turn MAIL_LOG_ONLY off")
    config["APP_BASE_URL"] = link_base_url(config["APP_BASE_URL"], environ)
    if config["MAIL_USE_TLS"] and config["MAIL_USE_SSL"]:
        raise ConfigError("MAIL_USE_SSL", "use either MAIL_USE_TLS or MAIL_USE_SSL, not both")
    if config["REDIS_SENTINELS"] and not config["REDIS_SENTINEL_MASTER"]:
        raise ConfigError("REDIS_SENTINEL_MASTER", "required when REDIS_SENTINELS is set")
    _check_cluster(config)
    if not config["MAIL_DEFAULT_SENDER"]:
        config["MAIL_DEFAULT_SENDER"] = "noreply@localhost"
    if config["SESSION_COOKIE_SECURE"] is None:
        config["SESSION_COOKIE_SECURE"] = production
    if not config["DATABASE_URL"]:
        private_dirs(instance_path)
        config["DATABASE_URL"] = f"sqlite:///{instance_path / 'signup.db'}"

    # Flask and extension settings derived from the SPEC variables.
    config.setdefault("SQLALCHEMY_DATABASE_URI", config["DATABASE_URL"])
    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    # Flask-WTF's HTTPS Referer check would refuse every confirm on a link page: those pages
    # send `Referrer-Policy: no-referrer` (section 3), so the browser's POST carries no Referer
    # (and Origin "null"). The session-bound CSRF token is still required on every form.
    config.setdefault("WTF_CSRF_SSL_STRICT", False)
    config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    config.setdefault("LANGUAGES", ["en", "tr"])
    # translations/ sits at the top level beside templates/ (Flask-Babel looks under app/).
    config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(PROJECT_ROOT / "translations"))
    # argon2id at argon2-cffi's defaults; TestConfig lowers these.
    config.setdefault("ARGON2_TIME_COST", 3)
    config.setdefault("ARGON2_MEMORY_COST", 65536)
    config.setdefault("ARGON2_PARALLELISM", 4)
    config.setdefault("CLAIM_SECONDS", 30)
    # LOGIN_MAX_FAILURES counts failed sign-ins per account in a window of this length.
    config.setdefault("LOGIN_FAILURE_WINDOW_SECONDS", 900)
    config.setdefault("REDIS_TIMEOUT", 1.0)
    return config


def _check_cluster(config) -> None:
    """One place names the cluster's nodes; from then on REDIS_CLUSTER_NODES holds them.

    They come from REDIS_CLUSTER_NODES (REDIS_URL then gives only the user, password and TLS,
    as it does for Sentinel) or from a redis+cluster:// REDIS_URL, not from both.
    """
    url = config["REDIS_URL"]
    if urlsplit(url).scheme.lower() in CLUSTER_SCHEMES:
        url, nodes = split_cluster_url(url)
        if config["REDIS_CLUSTER_NODES"]:
            raise ConfigError("REDIS_CLUSTER_NODES", "the cluster's nodes are named twice, here "
                                                     "and in REDIS_URL: keep one")
        config["REDIS_CLUSTER_NODES"] = nodes
    if not config["REDIS_CLUSTER_NODES"]:
        return
    if config["REDIS_SENTINELS"]:
        raise ConfigError("REDIS_CLUSTER_NODES", "use either REDIS_SENTINELS or a cluster, "
                                                 "not both")
    if url.startswith(("redis://", "rediss://")) and urlsplit(url).path.strip("/") not in ("", "0"):
        raise ConfigError("REDIS_URL", "a Redis Cluster has only database 0")


class TestConfig:
    """Overrides for tests: memory store, cheap hashing, no rate limits, no CSRF by default."""

    values = {
        "APP_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tests-0123456789",
        "REDIS_URL": "memory://",
        "RESEND_COOLDOWN_SECONDS": 0,
        "RESEND_MAX_PER_HOUR": 1000,
        "RATELIMIT_ENABLED": False,
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 1024,
        "ARGON2_PARALLELISM": 1,
    }

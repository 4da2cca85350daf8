"""Configuration read from the environment (and `.env`), parsed and checked at start-up.

SETTINGS declares every environment variable once (name, default, parser, use). load_config
runs the steps in order: read_settings (environment and overrides, parsed alike),
check_settings, check_production (APP_ENV=production), fill_in_defaults, flask_settings.
TestConfig is the same settings with the values tests run with.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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
        # Not the URL itself: it may carry the password.
        raise ConfigError("REDIS_URL", f"a cluster URL names its nodes as host:port,host:port, "
                                       f"got none in {scheme}://…")
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


def _at_least(minimum):
    """An int parser refusing values below `minimum`."""
    return lambda name, raw: _int(name, raw, minimum=minimum)


def _app_env(name, raw):
    value = raw.strip().lower()
    if value not in ("development", "production", "testing"):
        raise ConfigError(name, f"expected development or production, got {value!r}")
    return value


def _names(name, raw):
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default as `.env` would spell it, its parser, its use.

    `default` None means unset (an empty value in the environment is unset too). `parse`
    takes (name, text) and returns the typed value or raises ConfigError naming the variable;
    None keeps the text. `testing` is the value TestConfig gives it (None: the default).
    """

    name: str
    default: str | None
    parse: Callable[[str, str], Any] | None = None
    doc: str = ""
    testing: Any = None


# Every environment variable the app reads, once: SPEC section 10, then the tuning values
# that SPEC leaves to the implementation. `.env.example` documents each one.
SETTINGS = {setting.name: setting for setting in (
    Setting("APP_ENV", "development", _app_env,
            "development, or production (start-up checks, Secure cookies); tests use testing",
            testing="testing"),
    Setting("SECRET_KEY", None, None, "signs sessions and keys the code and token digests",
            testing="test-secret-key-that-is-long-enough-for-tests-0123456789"),
    Setting("SECRET_KEY_FALLBACKS", "", _names, "old keys, comma-separated, during a rotation"),
    Setting("APP_BASE_URL", None, _base_url, "the public URL emailed links are built on"),
    Setting("REDIS_URL", "redis://localhost:6379/0", _redis_url,
            "the pending store: redis://, rediss://, unix://, redis+cluster:// or memory://",
            testing="memory://"),
    Setting("REDIS_SENTINELS", "", _host_ports, "Sentinel instead: host:port,host:port"),
    Setting("REDIS_SENTINEL_MASTER", None, None, "the master's name at the sentinels"),
    Setting("REDIS_CLUSTER_NODES", "", _host_ports, "a Redis Cluster's nodes, host:port,..."),
    Setting("REDIS_KEY_PREFIX", "signup:", None, "every Redis key starts with it"),
    Setting("REDIS_TIMEOUT", "1.0", _float,
            "seconds to connect to Redis and for each reply before falling back"),
    Setting("PENDING_FALLBACK", "on", _bool, "keep registrations in memory while Redis is down"),
    Setting("DATABASE_URL", None, _database_url, "the users database (SQLAlchemy URL)"),
    Setting("MAIL_SERVER", None, None, "SMTP host; unset writes emails to the log (development)"),
    Setting("MAIL_LOG_ONLY", "off", _bool, "write every email to the log instead, on purpose"),
    Setting("MAIL_PORT", "25", _at_least(1), "SMTP port"),
    Setting("MAIL_USE_TLS", "off", _bool, "STARTTLS"),
    Setting("MAIL_USE_SSL", "off", _bool, "implicit TLS"),
    Setting("MAIL_USERNAME", None, None, "SMTP login"),
    Setting("MAIL_PASSWORD", None, None, "SMTP password"),
    Setting("MAIL_DEFAULT_SENDER", None, None, "From address; noreply@localhost in development"),
    Setting("MAIL_TIMEOUT", "10", _float, "seconds per SMTP operation"),
    Setting("PENDING_TTL_SECONDS", "86400", _at_least(1), "how long a registration waits"),
    Setting("CODE_TTL_SECONDS", "3600", _at_least(1), "how long a code is valid"),
    Setting("CODE_MAX_ATTEMPTS", "5", _at_least(1), "wrong codes per issued code"),
    Setting("REGISTRATION_MAX_ATTEMPTS", "10", _at_least(1),
            "wrong codes and passwords per address per PENDING_TTL_SECONDS"),
    Setting("RESEND_COOLDOWN_SECONDS", "60", _int, "seconds between two emails to an address",
            testing=0),
    Setting("RESEND_MAX_PER_HOUR", "5", _at_least(1), "emails per address per hour",
            testing=1000),
    Setting("CLAIM_SECONDS", "30", _at_least(1),
            "how long a right code or link holds its registration while it is promoted"),
    Setting("PASSWORD_MIN_LENGTH", "8", _at_least(1), "shortest password accepted"),
    Setting("ARGON2_TIME_COST", "3", _at_least(1), "argon2id passes (argon2-cffi's default)",
            testing=1),
    Setting("ARGON2_MEMORY_COST", "65536", _at_least(8), "argon2id memory in KiB", testing=1024),
    Setting("ARGON2_PARALLELISM", "4", _at_least(1), "argon2id lanes", testing=1),
    Setting("RATELIMIT_ENABLED", "on", _bool, "per-IP limits on the form POSTs",
            testing=False),
    Setting("RATELIMIT_SIGNUP", "20/minute", _limit, "POST /signup per IP"),
    Setting("RATELIMIT_VERIFY", "30 per 5 minutes", _limit, "POST /verify per IP"),
    Setting("RATELIMIT_RESEND", "10/hour", _limit, "POST /resend per IP"),
    Setting("RATELIMIT_LOGIN", "10/minute", _limit, "POST /login per IP"),
    Setting("TRUSTED_PROXIES", "0", _int, "reverse proxies in front (X-Forwarded-For hops)"),
    Setting("SESSION_COOKIE_SECURE", None, _bool, "on in production, off in development"),
    Setting("HEALTH_TOKEN", None, None, "Bearer token for /metrics and /health's detail"),
    Setting("MAX_CONTENT_LENGTH", "65536", _at_least(1024), "request body limit in bytes"),
    Setting("RESET_TTL_SECONDS", "3600", _at_least(1), "how long a password-reset link works"),
    Setting("LOGIN_MAX_FAILURES", "10", _at_least(1),
            "failed sign-ins per account per LOGIN_FAILURE_WINDOW_SECONDS"),
    Setting("LOGIN_FAILURE_WINDOW_SECONDS", "900", _at_least(1),
            "the window LOGIN_MAX_FAILURES counts in"),
    Setting("FAST_PATHS", "on", _bool,
            "serve blank form pages from a per-language cache (app/fastpaths); off: render all"),
)}

# Keys the code reads that are neither an environment variable above nor set by
# flask_settings: Flask's and its extensions' own, with why the app touches them.
EXTENSION_KEYS = {
    "SESSION_COOKIE_NAME": "Flask's; tells whether a request brought a session",
    "TEMPLATES_AUTO_RELOAD": "Flask's; the fast paths stay off while templates reload",
    "RATELIMIT_STORAGE_URI": "Flask-Limiter's; limits.init_app sets it from REDIS_*",
    "RATELIMIT_STORAGE_OPTIONS": "Flask-Limiter's; limits.init_app sets it from REDIS_*",
    "RATELIMIT_HEADERS_ENABLED": "Flask-Limiter's; limits.init_app turns it off",
    "PENDING_MANAGER": "a test's own PendingRegistrationManager instead of one built here",
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


def _as_text(value) -> str | None:
    """An override as the environment would spell it, so one parser checks both."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(":".join(map(str, item)) if isinstance(item, tuple) else str(item)
                        for item in value)
    return str(value)


def read_settings(env, overrides=None) -> dict:
    """Every declared setting, parsed: from `overrides` when named there, else from `env`.

    An override is read as the environment would spell it (True as "on", 5 as "5", a list
    comma-separated), so the same parser checks it; None or "" means unset, as in `.env`.
    """
    overrides = overrides or {}
    config = {}
    for name, setting in SETTINGS.items():
        raw = _as_text(overrides[name]) if name in overrides else env.get(name)
        if raw is None or (raw == "" and setting.default is None):
            raw = setting.default
        if raw is None:
            config[name] = None
        else:
            config[name] = setting.parse(name, raw) if setting.parse else raw
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


def check_settings(config) -> None:
    """The checks between settings that hold in every mode; ConfigError naming one of them."""
    if config["MAIL_LOG_ONLY"] and config["MAIL_SERVER"]:
        raise ConfigError("MAIL_LOG_ONLY", "on writes emails to the log instead of sending "
                                           "them: unset MAIL_SERVER, or turn MAIL_LOG_ONLY off")
    if config["MAIL_USE_TLS"] and config["MAIL_USE_SSL"]:
        raise ConfigError("MAIL_USE_SSL", "use either MAIL_USE_TLS or MAIL_USE_SSL, not both")
    if config["REDIS_SENTINELS"] and not config["REDIS_SENTINEL_MASTER"]:
        raise ConfigError("REDIS_SENTINEL_MASTER", "required when REDIS_SENTINELS is set")
    _check_cluster(config)
    # argon2 needs 8 KiB per lane; argon2-cffi would only say so at the first hash.
    if config["ARGON2_MEMORY_COST"] < 8 * config["ARGON2_PARALLELISM"]:
        raise ConfigError("ARGON2_MEMORY_COST", f"must be at least 8 KiB per lane (8 × "
                                                f"ARGON2_PARALLELISM = "
                                                f"{8 * config['ARGON2_PARALLELISM']}), got "
                                                f"{config['ARGON2_MEMORY_COST']}")


def check_production(config: dict) -> None:
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


def fill_in_defaults(config, environ=None, instance_path: Path = INSTANCE_PATH) -> None:
    """The defaults that depend on the mode or the machine: the development secret, the link
    base URL, the sender, Secure cookies and the SQLite file in the instance folder."""
    production = config["APP_ENV"] == "production"
    config["SECRET_KEY_GENERATED"] = False
    if not production and not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _dev_secret(instance_path)
        config["SECRET_KEY_GENERATED"] = True
    config["APP_BASE_URL"] = link_base_url(config["APP_BASE_URL"], environ)
    if not config["MAIL_DEFAULT_SENDER"]:
        config["MAIL_DEFAULT_SENDER"] = "noreply@localhost"
    if config["SESSION_COOKIE_SECURE"] is None:
        config["SESSION_COOKIE_SECURE"] = production
    if not config["DATABASE_URL"]:
        private_dirs(instance_path)
        config["DATABASE_URL"] = f"sqlite:///{instance_path / 'signup.db'}"


def flask_settings(config) -> dict:
    """Flask's and its extensions' settings, derived from the declared ones."""
    return {
        "TESTING": config["APP_ENV"] == "testing",
        "SQLALCHEMY_DATABASE_URI": config["DATABASE_URL"],
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        # Flask-WTF's HTTPS Referer check would refuse every confirm on a link page: those
        # pages send `Referrer-Policy: no-referrer` (section 3), so the browser's POST carries
        # no Referer (and Origin "null"). The session-bound CSRF token is still required.
        "WTF_CSRF_SSL_STRICT": False,
        # Flask-Mail suppresses sending while TESTING; tests read a real SMTP server instead.
        "MAIL_SUPPRESS_SEND": False,
        "BABEL_DEFAULT_LOCALE": "en",
        "LANGUAGES": ["en", "tr"],
        # translations/ sits at the top level beside templates/ (Flask-Babel looks under app/).
        "BABEL_TRANSLATION_DIRECTORIES": str(PROJECT_ROOT / "translations"),
    }


def load_config(environ=None, overrides=None, instance_path: Path = INSTANCE_PATH):
    """Return the Flask config dict: every declared setting parsed, checked and defaulted,
    then the Flask settings derived from them.

    `environ` (default: the real environment) is read over `.env`. `overrides` (a test's, or
    a caller's of `create_app`) win over both; a declared setting among them is parsed as the
    environment's text would be, and any other key (Flask's own, such as WTF_CSRF_ENABLED) is
    passed to Flask as it is, after the derived settings.
    """
    overrides = dict(overrides or {})
    config = read_settings(read_environment(environ), overrides)
    check_settings(config)
    if config["APP_ENV"] == "production":
        check_production(config)
    fill_in_defaults(config, environ, instance_path)
    config.update(flask_settings(config))
    config.update({key: value for key, value in overrides.items() if key not in SETTINGS})
    return config


class TestConfig:
    """The settings tests run with: memory store, cheap hashing, no rate limits, no resend wait.

    The same declared settings with the `testing` values given in SETTINGS, passed as
    overrides (`create_app(TestConfig.values)`), so they are parsed and checked like any.
    """

    values = {name: setting.testing for name, setting in SETTINGS.items()
              if setting.testing is not None}

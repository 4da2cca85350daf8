"""`app.config.load_config`: SPEC section 10 defaults, parsing, and the production checks."""

from __future__ import annotations

import ast
import base64
import random
import secrets
from pathlib import Path

import pytest

import app.config as config_module
from app.config import (EXTENSION_KEYS, SETTINGS, ConfigError, TestConfig, load_config,
                        read_environment)
from tests.helpers import csrf_token

ROOT = Path(__file__).resolve().parent.parent
GOOD_SECRET = "IsUv4Ym83xvgUhc_lrjzyKf6cb3vxR3xMaenpi2n9BI"  # secrets.token_urlsafe(32)
HEALTH_TOKEN = "zG2LY_OX9Js8T2oXL2_8vgTJWNLiNtJbhRgfIt9r6M8"
PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": GOOD_SECRET,
              "APP_BASE_URL": "https://signup.example.com", "HEALTH_TOKEN": HEALTH_TOKEN,
              "MAIL_SERVER": "smtp.example.com", "MAIL_DEFAULT_SENDER": "noreply@example.com"}
# Too little variety for a production secret, though 40 characters long.
WEAK_SECRETS = {"one-character": "a" * 40, "ten-characters-repeated": "0123456789" * 4,
                "word-repeated": "changeme" * 5, "pattern-and-a-bit": "abcdefghijkl" * 3 + "abc"}


SPEC_DEFAULTS = {
    "APP_ENV": "development",
    "APP_BASE_URL": "http://127.0.0.1:5000",  # what `make run` serves; never a request header
    "SECRET_KEY_FALLBACKS": [],
    "REDIS_URL": "redis://localhost:6379/0",
    "REDIS_SENTINELS": [],
    "REDIS_SENTINEL_MASTER": None,
    "REDIS_CLUSTER_NODES": [],
    "REDIS_KEY_PREFIX": "signup:",
    "PENDING_FALLBACK": True,
    "MAIL_SERVER": None,
    "MAIL_LOG_ONLY": False,
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_DEFAULT_SENDER": "noreply@localhost",
    "MAIL_TIMEOUT": 10,
    "PENDING_TTL_SECONDS": 86400,
    "CODE_TTL_SECONDS": 3600,
    "CODE_MAX_ATTEMPTS": 5,
    "REGISTRATION_MAX_ATTEMPTS": 10,
    "RESEND_COOLDOWN_SECONDS": 60,
    "RESEND_MAX_PER_HOUR": 5,
    "PASSWORD_MIN_LENGTH": 8,
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_SIGNUP": "20/minute",
    "RATELIMIT_VERIFY": "30 per 5 minutes",
    "RATELIMIT_RESEND": "10/hour",
    "RATELIMIT_LOGIN": "10/minute",
    "TRUSTED_PROXIES": 0,
    "SESSION_COOKIE_SECURE": False,
    "HEALTH_TOKEN": None,
    "MAX_CONTENT_LENGTH": 65536,
    "RESET_TTL_SECONDS": 3600,
    "LOGIN_MAX_FAILURES": 10,
}


@pytest.fixture(autouse=True)
def no_project_dotenv(tmp_path, monkeypatch):
    """Read `.env` from an empty project root, so a developer's own `.env` changes nothing."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setattr(config_module, "PROJECT_ROOT", root)
    return root


@pytest.fixture
def instance(tmp_path):
    """An empty instance folder."""
    path = tmp_path / "instance"
    path.mkdir()
    return path


def load(instance, **environ):
    """load_config with exactly these environment variables."""
    return load_config(environ=environ, instance_path=instance)


def test_defaults_match_the_spec(instance):
    """With an empty environment every variable has the SPEC section 10 default."""
    config = load(instance)
    expected = {**SPEC_DEFAULTS, "DATABASE_URL": f"sqlite:///{instance / 'signup.db'}"}
    assert {name: config[name] for name in expected} == expected
    assert config["SQLALCHEMY_DATABASE_URI"] == config["DATABASE_URL"]
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_env_example_as_dotenv_gives_the_defaults(no_project_dotenv, instance):
    """The shipped `.env.example`, copied to `.env`, loads and gives the SPEC defaults."""
    example = config_module.Path(__file__).resolve().parent.parent / ".env.example"
    (no_project_dotenv / ".env").write_text(example.read_text())
    config = load(instance)
    expected = {**SPEC_DEFAULTS, "DATABASE_URL": f"sqlite:///{instance / 'signup.db'}"}
    assert {name: config[name] for name in expected} == expected


def test_values_are_parsed(instance):
    """Numbers, booleans, lists and URLs from the environment arrive typed."""
    config = load(instance, CODE_TTL_SECONDS="120", PENDING_FALLBACK="off", MAIL_PORT="2525",
                  MAIL_TIMEOUT="2.5", REDIS_URL="rediss://cache.example.com:6380/1",
                  REDIS_SENTINELS="s1:26379, s2:26380", REDIS_SENTINEL_MASTER="mymaster",
                  SECRET_KEY_FALLBACKS="old-one, older-one", RATELIMIT_LOGIN="5 per 2 minutes",
                  APP_BASE_URL="https://signup.example.com/")
    assert config["CODE_TTL_SECONDS"] == 120
    assert config["PENDING_FALLBACK"] is False
    assert config["MAIL_PORT"] == 2525
    assert config["MAIL_TIMEOUT"] == 2.5
    assert config["REDIS_URL"] == "rediss://cache.example.com:6380/1"
    assert config["REDIS_SENTINELS"] == [("s1", 26379), ("s2", 26380)]
    assert config["SECRET_KEY_FALLBACKS"] == ["old-one", "older-one"]
    assert config["RATELIMIT_LOGIN"] == "5 per 2 minutes"
    assert config["APP_BASE_URL"] == "https://signup.example.com"


@pytest.mark.parametrize("value", ["10/hour;100/day", "10/hour, 100/day", "10 per hour; 100 per day"])
def test_several_limits_take_either_separator(instance, value, make_app):
    """Flask-Limiter reads ";" and "," alike; so does the check at start-up."""
    assert load(instance, RATELIMIT_RESEND=value)["RATELIMIT_RESEND"] == value
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN=value.replace("10", "1", 1))
    client = app.test_client()
    form = {"csrf_token": csrf_token(client.get("/login").text), "email": "x", "password": "y"}
    assert [client.post("/login", data=form).status_code for _ in range(2)] == [400, 429]


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://h:6380/0",
                                 "unix:///run/redis.sock", "memory://",
                                 "redis+cluster://h1:7000,h2:7001",
                                 "rediss+cluster://user:secret@h1:7000/0"])
def test_known_redis_schemes_accepted(instance, url):
    """redis://, rediss://, unix://, redis+cluster://, rediss+cluster:// and memory:// are
    accepted."""
    assert load(instance, REDIS_URL=url)["REDIS_URL"] == url


@pytest.mark.parametrize(("environ", "nodes"), [
    ({"REDIS_CLUSTER_NODES": "c1:7000, c2:7001,c3:7002"},
     [("c1", 7000), ("c2", 7001), ("c3", 7002)]),
    ({"REDIS_URL": "redis+cluster://c1:7000,c2:7001"}, [("c1", 7000), ("c2", 7001)]),
    ({"REDIS_URL": "rediss+cluster://app:p%40ss@c1:7000,c2:7001/0?ssl_cert_reqs=none"},
     [("c1", 7000), ("c2", 7001)]),
    ({"REDIS_URL": "rediss://app:secret@not-used:6379/0", "REDIS_CLUSTER_NODES": "c1:7000"},
     [("c1", 7000)]),
])
def test_cluster_nodes_from_either_spelling(instance, environ, nodes):
    """A cluster is named by REDIS_CLUSTER_NODES or by a redis+cluster:// REDIS_URL; either
    way REDIS_CLUSTER_NODES then holds its nodes, and REDIS_URL is kept as given (its
    credentials and TLS settings apply to every node)."""
    config = load(instance, **environ)
    assert config["REDIS_CLUSTER_NODES"] == nodes
    assert config["REDIS_URL"] == environ.get("REDIS_URL", SPEC_DEFAULTS["REDIS_URL"])


@pytest.mark.parametrize(("environ", "variable"), [
    ({"REDIS_CLUSTER_NODES": "c1:7000", "REDIS_SENTINELS": "s1:26379",
      "REDIS_SENTINEL_MASTER": "signup"}, "REDIS_CLUSTER_NODES"),
    ({"REDIS_CLUSTER_NODES": "c1:7000", "REDIS_URL": "redis+cluster://c2:7000"},
     "REDIS_CLUSTER_NODES"),
    ({"REDIS_CLUSTER_NODES": "c1:7000", "REDIS_URL": "redis://h:6379/3"}, "REDIS_URL"),
])
def test_conflicting_cluster_settings_name_the_variable(instance, environ, variable):
    """Sentinel and a cluster together, the nodes named twice, or a database other than 0 for
    a cluster stop start-up naming the variable to change."""
    with pytest.raises(ConfigError) as caught:
        load(instance, **environ)
    assert caught.value.variable == variable


BAD_VALUES = [
    ("CODE_TTL_SECONDS", "soon"),
    ("PENDING_TTL_SECONDS", "-5"),
    ("CODE_TTL_SECONDS", "-1"),
    ("RESEND_COOLDOWN_SECONDS", "-60"),
    ("CODE_MAX_ATTEMPTS", "five"),
    ("MAIL_PORT", "smtp"),
    ("MAIL_TIMEOUT", "forever"),
    ("TRUSTED_PROXIES", "1.5"),
    ("REDIS_URL", "http://localhost:6379"),
    ("REDIS_URL", "mysql://localhost/db"),
    ("RATELIMIT_SIGNUP", "lots"),
    ("RATELIMIT_VERIFY", "30 per fortnight"),
    ("RATELIMIT_RESEND", "10/hour; often"),
    ("PENDING_FALLBACK", "maybe"),
    ("RATELIMIT_ENABLED", "enabled"),
    ("SESSION_COOKIE_SECURE", "sure"),
    ("DATABASE_URL", "signup.db"),
    ("APP_BASE_URL", "signup.example.com"),
    ("REDIS_SENTINELS", "sentinel-without-port"),
    ("RESET_TTL_SECONDS", "an hour"),
    ("RESET_TTL_SECONDS", "0"),
    ("LOGIN_MAX_FAILURES", "-1"),
    ("LOGIN_MAX_FAILURES", "ten"),
    ("REDIS_CLUSTER_NODES", "node-without-port"),
    ("REDIS_CLUSTER_NODES", "c1:7000,c2:port"),
    ("REDIS_URL", "redis+cluster://"),
    ("REDIS_URL", "redis+cluster://c1:7000,c2"),
    ("REDIS_URL", "rediss+cluster://c1:7000/2"),
    ("REDIS_URL", "redis+sentinel://s1:26379"),
    ("MAIL_LOG_ONLY", "sometimes"),
    ("REDIS_TIMEOUT", "0"),
    ("REDIS_TIMEOUT", "a second"),
    ("CLAIM_SECONDS", "0"),
    ("LOGIN_FAILURE_WINDOW_SECONDS", "15 minutes"),
    ("ARGON2_TIME_COST", "0"),
    ("ARGON2_MEMORY_COST", "4"),
    ("ARGON2_PARALLELISM", "many"),
    ("APP_ENV", "staging"),
    ("PORT", "http"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_value_names_the_variable(instance, name, value):
    """A malformed value stops start-up with a ConfigError naming the variable."""
    with pytest.raises(ConfigError) as caught:
        load(instance, **{name: value})
    assert caught.value.variable == name
    assert name in str(caught.value)


@pytest.mark.parametrize(("word", "expected"), [
    ("on", True), ("ON", True), ("On", True), ("true", True), ("TRUE", True), ("True", True),
    ("yes", True), ("YES", True), ("1", True),
    ("off", False), ("OFF", False), ("Off", False), ("false", False), ("FALSE", False),
    ("no", False), ("No", False), ("0", False),
])
def test_booleans_accept_every_spelling(instance, word, expected):
    """Booleans accept on/off, true/false, yes/no, 1/0 in any case."""
    config = load(instance, PENDING_FALLBACK=word, RATELIMIT_ENABLED=word, MAIL_USE_TLS=word,
                  SESSION_COOKIE_SECURE=word)
    for name in ("PENDING_FALLBACK", "RATELIMIT_ENABLED", "MAIL_USE_TLS",
                 "SESSION_COOKIE_SECURE"):
        assert config[name] is expected


def test_links_default_to_what_make_run_serves(instance):
    """Without APP_BASE_URL, links are on http://127.0.0.1:<PORT> (PORT as gunicorn reads it)."""
    assert load(instance, PORT="8000")["APP_BASE_URL"] == "http://127.0.0.1:8000"
    assert load(instance)["APP_BASE_URL"] == "http://127.0.0.1:5000"
    given = load(instance, PORT="8000", APP_BASE_URL="https://signup.example.com")
    assert given["APP_BASE_URL"] == "https://signup.example.com"


def test_production_with_proper_settings_starts(instance):
    """Production with a strong SECRET_KEY, APP_BASE_URL, HEALTH_TOKEN and MAIL_SERVER loads,
    with secure cookies."""
    config = load(instance, **PRODUCTION)
    assert config["APP_ENV"] == "production"
    assert config["SECRET_KEY"] == GOOD_SECRET
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SECRET_KEY_GENERATED"] is False
    assert not (instance / config_module.DEV_SECRET_FILE).exists()


@pytest.mark.parametrize(("changes", "variable"), [
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": "short-secret"}, "SECRET_KEY"),
    ({"APP_BASE_URL": None}, "APP_BASE_URL"),
    ({"APP_BASE_URL": ""}, "APP_BASE_URL"),
    ({"HEALTH_TOKEN": None}, "HEALTH_TOKEN"),
    ({"HEALTH_TOKEN": ""}, "HEALTH_TOKEN"),
    ({"HEALTH_TOKEN": "token"}, "HEALTH_TOKEN"),
    ({"HEALTH_TOKEN": "changeme" * 5}, "HEALTH_TOKEN"),
    ({"MAIL_SERVER": None}, "MAIL_SERVER"),
    ({"MAIL_SERVER": ""}, "MAIL_SERVER"),
    ({"MAIL_SERVER": None, "MAIL_LOG_ONLY": "off"}, "MAIL_SERVER"),
    *[({"SECRET_KEY": weak}, "SECRET_KEY") for weak in WEAK_SECRETS.values()],
    *[({"SECRET_KEY_FALLBACKS": f"{secrets.token_hex(32)},{weak}"}, "SECRET_KEY_FALLBACKS")
      for weak in WEAK_SECRETS.values()],
], ids=["no-secret", "empty-secret", "short-secret", "no-base-url", "empty-base-url",
        "no-health-token", "empty-health-token", "short-health-token", "repeated-health-token",
        "no-mail-server", "empty-mail-server", "mail-log-only-off",
        *[f"secret-{name}" for name in WEAK_SECRETS],
        *[f"fallback-{name}" for name in WEAK_SECRETS]])
def test_production_refuses_missing_settings(instance, changes, variable):
    """Production without a strong SECRET_KEY (and fallbacks), APP_BASE_URL, HEALTH_TOKEN or
    MAIL_SERVER is refused with a message naming the variable."""
    environ = {**PRODUCTION, **changes}
    environ = {k: v for k, v in environ.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load(instance, **environ)
    assert caught.value.variable == variable
    assert variable in str(caught.value)


def seeded_token_hex(rng: random.Random) -> str:
    """secrets.token_hex(32), from a seeded generator (the same run every time)."""
    return rng.randbytes(32).hex()


def seeded_token_urlsafe(rng: random.Random) -> str:
    """secrets.token_urlsafe(32), as `secrets` builds it, from a seeded generator; one that
    begins with "dev" (1 in 262 144, refused as a development value) is drawn again."""
    while True:
        token = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
        if not token.startswith("dev"):
            return token


@pytest.mark.parametrize("make", [seeded_token_hex, seeded_token_urlsafe],
                         ids=["token_hex", "token_urlsafe"])
def test_production_accepts_generated_secrets(instance, make):
    """Keys shaped as secrets.token_hex(32) and token_urlsafe(32) give them pass the rule: 200
    of each kind as SECRET_KEY, as a fallback and as HEALTH_TOKEN."""
    rng = random.Random(11)
    for _ in range(200):
        key, old, token = make(rng), make(rng), make(rng)
        config = load(instance, **{**PRODUCTION, "SECRET_KEY": key, "HEALTH_TOKEN": token,
                                   "SECRET_KEY_FALLBACKS": old})
        assert (config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"]) == (key, [old])


def test_production_mail_log_only_is_an_explicit_choice(instance):
    """MAIL_LOG_ONLY=on lets production start without MAIL_SERVER (emails to the log); with a
    MAIL_SERVER as well it is a contradiction, refused in any mode."""
    environ = {k: v for k, v in PRODUCTION.items() if k != "MAIL_SERVER"}
    config = load(instance, **environ, MAIL_LOG_ONLY="on")
    assert config["MAIL_LOG_ONLY"] is True and config["MAIL_SERVER"] is None
    for mode in (PRODUCTION, {}):
        with pytest.raises(ConfigError) as caught:
            load(instance, **{**mode, "MAIL_SERVER": "smtp.example.com", "MAIL_LOG_ONLY": "on"})
        assert caught.value.variable == "MAIL_LOG_ONLY"


def test_development_needs_neither_token_nor_mail_server(instance):
    """`make run` stays open: no HEALTH_TOKEN, no MAIL_SERVER, a generated secret."""
    config = load(instance)
    assert config["HEALTH_TOKEN"] is None and config["MAIL_SERVER"] is None


def test_production_ignores_dev_secret_file(instance):
    """A development secret in the instance folder does not let production start without one."""
    load(instance)  # development: writes the generated key
    assert (instance / config_module.DEV_SECRET_FILE).exists()
    environ = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load(instance, **environ)


def test_development_secret_generated_once_and_kept(instance):
    """Development without SECRET_KEY generates one, keeps it in the instance folder, reuses it."""
    first = load(instance)
    assert first["SECRET_KEY_GENERATED"] is True
    assert len(first["SECRET_KEY"]) >= 32
    kept = (instance / config_module.DEV_SECRET_FILE).read_text().strip()
    assert kept == first["SECRET_KEY"]
    second = load(instance)
    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    other_instance = instance.parent / "other-instance"
    assert load(other_instance)["SECRET_KEY"] != first["SECRET_KEY"]


def test_development_uses_given_secret(instance):
    """Development with SECRET_KEY set uses it and writes no file."""
    config = load(instance, SECRET_KEY="my-development-secret")
    assert config["SECRET_KEY"] == "my-development-secret"
    assert config["SECRET_KEY_GENERATED"] is False
    assert not (instance / config_module.DEV_SECRET_FILE).exists()


def test_read_environment_dotenv_under_real_environment(tmp_path):
    """`.env` values are read and the real environment wins over them."""
    dotenv = tmp_path / "custom.env"
    dotenv.write_text("CODE_TTL_SECONDS=120\nREDIS_KEY_PREFIX=fromdotenv:\n"
                      "# a comment\nHEALTH_TOKEN='quoted token'\n")
    merged = read_environment({"REDIS_KEY_PREFIX": "real:", "MAIL_PORT": "2525"},
                              dotenv_path=dotenv)
    assert merged["CODE_TTL_SECONDS"] == "120"
    assert merged["REDIS_KEY_PREFIX"] == "real:"
    assert merged["MAIL_PORT"] == "2525"
    assert merged["HEALTH_TOKEN"] == "quoted token"


def test_read_environment_without_dotenv_file(tmp_path):
    """A missing `.env` is fine: only the real environment is used."""
    merged = read_environment({"A": "1"}, dotenv_path=tmp_path / "missing.env")
    assert merged == {"A": "1"}


def test_load_config_reads_project_dotenv(no_project_dotenv, instance):
    """load_config takes values from the project's `.env`, with the environment winning."""
    (no_project_dotenv / ".env").write_text("CODE_TTL_SECONDS=120\nCODE_MAX_ATTEMPTS=3\n")
    config = load(instance, CODE_MAX_ATTEMPTS="7")
    assert config["CODE_TTL_SECONDS"] == 120
    assert config["CODE_MAX_ATTEMPTS"] == 7


def test_bad_dotenv_value_names_the_variable(no_project_dotenv, instance):
    """A bad value coming from `.env` is refused like one from the environment."""
    (no_project_dotenv / ".env").write_text("PENDING_TTL_SECONDS=a day\n")
    with pytest.raises(ConfigError, match="PENDING_TTL_SECONDS"):
        load(instance)


def test_overrides_win(instance):
    """create_app's overrides win over the environment and keep their types."""
    config = load_config(environ={"CODE_MAX_ATTEMPTS": "7"}, overrides={"CODE_MAX_ATTEMPTS": 2},
                         instance_path=instance)
    assert config["CODE_MAX_ATTEMPTS"] == 2


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, v in BAD_VALUES if n in SETTINGS])
def test_bad_override_names_the_variable_like_the_environment(instance, name, value):
    """An override is parsed like the environment: the same bad value, the same error."""
    with pytest.raises(ConfigError) as from_environment:
        load(instance, **{name: value})
    with pytest.raises(ConfigError) as from_override:
        load_config(environ={}, overrides={name: value}, instance_path=instance)
    assert str(from_override.value) == str(from_environment.value)


@pytest.mark.parametrize(("name", "typed", "text"), [
    ("PENDING_FALLBACK", False, "off"),
    ("RATELIMIT_ENABLED", True, "on"),
    ("CODE_TTL_SECONDS", 120, "120"),
    ("MAIL_TIMEOUT", 2.5, "2.5"),
    ("REDIS_TIMEOUT", 0.2, "0.2"),
    ("SECRET_KEY_FALLBACKS", ["old-one", "older-one"], "old-one,older-one"),
    ("REDIS_CLUSTER_NODES", [("c1", 7000), ("c2", 7001)], "c1:7000,c2:7001"),
    ("APP_BASE_URL", "https://signup.example.com/", "https://signup.example.com/"),
    ("DATABASE_URL", "postgres://u:p@db/signup", "postgres://u:p@db/signup"),
])
def test_typed_override_gives_what_the_environment_gives(instance, name, typed, text):
    """A typed override (True, 120, a list) ends as the same value as its environment text."""
    overridden = load_config(environ={}, overrides={name: typed}, instance_path=instance)
    assert overridden[name] == load(instance, **{name: text})[name]


def test_none_override_means_unset_whatever_the_environment_says(instance):
    """An override of None is the default, not the environment's value."""
    config = load_config(environ={"CODE_TTL_SECONDS": "120", "MAIL_SERVER": "smtp.example.com"},
                         overrides={"CODE_TTL_SECONDS": None, "MAIL_SERVER": None},
                         instance_path=instance)
    assert config["CODE_TTL_SECONDS"] == 3600 and config["MAIL_SERVER"] is None


def test_other_overrides_reach_flask_unchanged(instance):
    """A key that is not a declared setting (Flask's own) is passed through, and wins over a
    derived Flask setting."""
    config = load_config(environ={}, instance_path=instance,
                         overrides={"WTF_CSRF_ENABLED": False, "SESSION_COOKIE_SAMESITE": "Strict"})
    assert config["WTF_CSRF_ENABLED"] is False
    assert config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_argon2_memory_needs_eight_kib_per_lane(instance):
    """argon2 needs 8 KiB of memory per lane: refused at start-up, not at the first hash."""
    with pytest.raises(ConfigError) as caught:
        load(instance, ARGON2_PARALLELISM="8", ARGON2_MEMORY_COST="32")
    assert caught.value.variable == "ARGON2_MEMORY_COST"
    assert "ARGON2_PARALLELISM" in str(caught.value)


def test_test_config_is_the_declared_settings_with_other_values(instance):
    """TestConfig names only declared settings and loads (parsed and checked like any)."""
    assert set(TestConfig.values) <= set(SETTINGS)
    config = load_config(environ={}, overrides=TestConfig.values, instance_path=instance)
    assert config["APP_ENV"] == "testing" and config["TESTING"] is True
    assert config["REDIS_URL"] == "memory://" and config["RATELIMIT_ENABLED"] is False
    assert load(instance)["TESTING"] is False


def test_every_declared_default_is_what_loads(instance):
    """Each setting's declared default is the value an empty environment gives it."""
    config = load(instance)
    for name, setting in SETTINGS.items():
        if setting.default is not None:
            parsed = setting.parse(name, setting.default) if setting.parse else setting.default
            assert config[name] == parsed, name


def env_example() -> dict[str, str]:
    """`.env.example`'s assignments, commented-out ones included."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.removeprefix("# ").strip()
        name, sep, value = line.partition("=")
        if sep and name.isupper() and name.replace("_", "").isalnum():
            values[name] = value
    return values


def test_every_setting_is_in_env_example_with_its_default():
    """Every declared environment setting has its line in `.env.example`, with the declared
    default (or empty when the default depends on the mode)."""
    listed = env_example()
    missing = sorted(set(SETTINGS) - set(listed))
    assert not missing, f"not in .env.example: {missing}"
    for name, setting in SETTINGS.items():
        if setting.default is not None:
            assert listed[name] == setting.default, name


SCANNED = [*sorted((ROOT / "app").rglob("*.py")), ROOT / "wsgi.py", ROOT / "gunicorn.conf.py",
           *sorted((ROOT / "bench").rglob("*.py"))]


def _is_config(node) -> bool:
    """`<anything>.config`, or a local the code names `config` or `cfg` (Flask's config)."""
    return ((isinstance(node, ast.Attribute) and node.attr == "config")
            or (isinstance(node, ast.Name) and node.id in ("config", "cfg")))


def _literal(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def config_keys_used() -> dict[str, list[str]]:
    """Every literal config key the code reads or sets (`config["X"]`, `config.get("X")`,
    `config.setdefault("X", …)`, `cfg["X"]`), with where."""
    used: dict[str, list[str]] = {}
    for path in SCANNED:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            key = None
            if isinstance(node, ast.Subscript) and _is_config(node.value):
                key = _literal(node.slice)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("get", "setdefault", "pop") and _is_config(node.func.value)
                  and node.args):
                key = _literal(node.args[0])
            if key:
                used.setdefault(key, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return used


def test_code_reads_only_declared_config_keys(instance):
    """Every config key app/, wsgi.py, gunicorn.conf.py and bench/ use is declared in
    app/config.py: a setting, a key load_config derives, or an EXTENSION_KEYS entry."""
    used = config_keys_used()
    # The scan sees the reads it is meant to see (it cannot pass by finding nothing).
    assert {"CLAIM_SECONDS", "ARGON2_TIME_COST", "REDIS_TIMEOUT", "CODE_TTL_SECONDS"} <= set(used)
    declared = set(load(instance)) | set(EXTENSION_KEYS)
    undeclared = {key: where for key, where in used.items() if key not in declared}
    assert not undeclared, f"config keys not declared in app/config.py: {undeclared}"


def test_extension_keys_are_all_used():
    """EXTENSION_KEYS lists only keys some module outside config.py still uses."""
    outside = {key for key, where in config_keys_used().items()
               if any(not place.startswith("app/config.py") for place in where)}
    assert not set(EXTENSION_KEYS) - outside, set(EXTENSION_KEYS) - outside

"""Deployment files: docker-compose.yml, the Dockerfile, deploy/redis.conf run for real through
its ACL user, the monitoring files, and setup_redis.sh.

No Docker engine is needed: the compose file is parsed (and validated by `docker compose config`
or `docker-compose config` where a client is installed), and its Redis command is run with the
local redis-server.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
import yaml

from .helpers import PASSWORD, ROOT, SignupActions, free_port, require, text_of

COMPOSE_FILE = ROOT / "docker-compose.yml"
REDIS_CONF = ROOT / "deploy" / "redis.conf"
SETUP_REDIS = ROOT / "setup_redis.sh"
SPEC_METRICS = ("signup_started_total", "signup_emails_sent_total", "signup_emails_failed_total",
                "signup_verified_total", "signup_wrong_codes_total", "signup_expired_total",
                "signup_resends_total", "signup_rate_limited_total",
                "signup_pending_registrations", "signup_fallback_active",
                "signup_request_duration_seconds", "signup_password_resets_total",
                "signup_login_failures_total", "signup_accounts_deleted_total")
# Directives of deploy/redis.conf that name the host's paths or service manager: the tests run
# the file on a free port in a temporary folder, in the foreground.
HOST_DIRECTIVES = {"bind", "port", "daemonize", "supervised", "pidfile", "logfile", "dir"}
EMAIL = "ada@example.com"
# What compose refuses to start without (`${NAME:?message}`), each with a value for the tests.
COMPOSE_REQUIRED = {"SECRET_KEY": secrets.token_hex(32),
                    "APP_BASE_URL": "https://signup.example.com",
                    "HEALTH_TOKEN": secrets.token_hex(32),
                    "REDIS_PASSWORD": secrets.token_hex(32),
                    "REDIS_ADMIN_PASSWORD": secrets.token_hex(32),
                    "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16)}
# Where deploy/prometheus.yml reads the token, and docker-compose.yml's Prometheus writes it.
PROMETHEUS_TOKEN_FILE = "/prometheus/health_token"


def need_redis_server():
    """Skip (or fail under REQUIRE_REDIS=1) without a redis-server binary."""
    if not shutil.which("redis-server"):
        require("REQUIRE_REDIS", "redis-server is not installed")


def redis_version() -> tuple[int, ...]:
    """The local redis-server's version, e.g. (7, 0, 15)."""
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return tuple(int(n) for n in re.search(r"v=(\d+)\.(\d+)\.(\d+)", out).groups())


def wait_until_answers(client: redis.Redis, process: subprocess.Popen, timeout=10.0) -> None:
    """Wait until the server answers PING through `client`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "redis-server exited at start-up"
        try:
            if client.ping():
                return
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("redis-server did not answer")


def stop(process: subprocess.Popen) -> None:
    """Stop a server the test started."""
    if process.poll() is None:
        process.terminate()
        process.wait(10)


def acl_rules(line: str) -> list[str]:
    """The rules of a `user NAME on >password ...` line, without the name and password."""
    return [word for word in line.split()[2:] if not word.startswith(">")]


def conf_user_line(name: str) -> str:
    """deploy/redis.conf's `user NAME ...` line."""
    lines = [line for line in REDIS_CONF.read_text().splitlines()
             if line.startswith(f"user {name} ")]
    assert len(lines) == 1, f"one `user {name}` line expected in deploy/redis.conf"
    return lines[0]


# -- docker-compose.yml -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose():
    """docker-compose.yml, parsed."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def command_text(service: dict) -> str:
    """A service's command as one string (list or string form)."""
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else command


def healthcheck_text(service: dict) -> str:
    """A service's health check command as one string."""
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def test_compose_redis_is_7_alpine_with_aof_and_noeviction(compose):
    """Redis 7 Alpine, AOF fsynced every second, noeviction, protected mode."""
    service = compose["services"]["redis"]
    assert re.fullmatch(r"redis:7(\.\d+){0,2}-alpine[\d.]*", service["image"]), service["image"]
    command = command_text(service)
    for setting in ("--appendonly yes", "--appendfsync everysec",
                    "--maxmemory-policy noeviction", "--protected-mode yes"):
        assert setting in command, f"{setting!r} missing from the Redis command"
    assert "allkeys-" not in command and "volatile-" not in command


def test_compose_redis_needs_a_password_through_acl_users(compose):
    """No anonymous user; the app's ACL user has exactly deploy/redis.conf's rules."""
    service = compose["services"]["redis"]
    command = command_text(service)
    assert "--aclfile" in command
    assert "user default off" in command
    assert "REDIS_PASSWORD:?" in service["environment"]["REDIS_PASSWORD"]
    signup_line = re.search(r"user signup on [^\"']+", command).group(0)
    compose_rules = [rule for rule in acl_rules(signup_line) if rule != "+client|setinfo"]
    assert compose_rules == acl_rules(conf_user_line("signup"))


def test_compose_redis_health_check_volume_and_internal_network(compose):
    """A health check, a named volume on /data, only internal networks, nothing published."""
    service = compose["services"]["redis"]
    assert "ping" in healthcheck_text(service).lower()
    assert service["healthcheck"]["interval"]
    volumes = service["volumes"]
    assert "redis-data:/data" in volumes
    assert "redis-data" in compose["volumes"], "redis-data must be a named volume"
    assert "ports" not in service, "Redis must not be published to the host"
    networks = service["networks"]
    assert networks, "Redis must be on an explicit network"
    for name in networks:
        assert compose["networks"][name].get("internal") is True, f"network {name} is not internal"


def test_compose_web_service(compose):
    """The web service: built from the Dockerfile, .env, waits for a healthy Redis, /health."""
    web = compose["services"]["web"]
    build = web["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (context / dockerfile).is_file()
    assert ".env" in web["env_file"]
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/health" in healthcheck_text(web)
    # The app reaches Redis on the compose network, through the app's ACL user.
    assert re.fullmatch(r"redis://signup:\$\{REDIS_PASSWORD[^}]*\}@redis:6379/0",
                        web["environment"]["REDIS_URL"])
    assert set(web["networks"]) & set(compose["services"]["redis"]["networks"])
    assert any(str(volume).endswith(":/app/instance") for volume in web["volumes"])


def test_compose_web_scales_behind_haproxy(compose):
    """`--scale web=2`: web publishes no host port; haproxy (deploy/haproxy.cfg) serves the site
    and finds every web container on the compose network."""
    web, haproxy = compose["services"]["web"], compose["services"]["haproxy"]
    assert "ports" not in web and "container_name" not in web
    assert [str(port) for port in web["expose"]] == ["8000"]
    assert re.fullmatch(r"haproxy:2(\.\d+){0,2}(-alpine)?", haproxy["image"]), haproxy["image"]
    assert haproxy["volumes"] == ["./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert haproxy["ports"] == ["${WEB_PUBLISH:-127.0.0.1:8000}:8080"]
    assert set(haproxy["networks"]) & set(web["networks"])
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*bind :8080$", config, re.M)
    assert re.search(r"^\s*server-template web \d+ web:8000 ", config, re.M)


def test_compose_web_runs_production_and_requires_its_values(compose):
    """APP_ENV=production whatever .env says; SECRET_KEY, APP_BASE_URL and HEALTH_TOKEN are
    required by compose itself, each with a message naming it."""
    environment = compose["services"]["web"]["environment"]
    assert environment["APP_ENV"] == "production"
    for name in ("SECRET_KEY", "APP_BASE_URL", "HEALTH_TOKEN"):
        assert re.fullmatch(rf"\$\{{{name}:\?set {name} in \.env[^}}]*\}}", environment[name]), name


def test_compose_monitoring_profile(compose):
    """Prometheus scrapes the web's /metrics; Grafana gets a data source and the dashboard."""
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts a missing {source}"
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    # Every web container is a target of its own (`--scale web=N`), found through Docker's DNS.
    assert job["dns_sd_configs"] == [{"names": ["web"], "type": "A", "port": 8000,
                                      "refresh_interval": "30s"}]
    # Production serves /metrics only with HEALTH_TOKEN: Prometheus sends it from the file
    # that compose's Prometheus command writes from .env.
    assert job["authorization"] == {"type": "Bearer", "credentials_file": PROMETHEUS_TOKEN_FILE}
    command = command_text(services["prometheus"])
    assert f"> {PROMETHEUS_TOKEN_FILE}" in command and "umask 077" in command
    assert re.fullmatch(r"\$\{HEALTH_TOKEN:\?[^}]+\}",
                        services["prometheus"]["environment"]["HEALTH_TOKEN"])
    # Grafana's admin password comes from .env, with no default.
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?set GRAFANA_ADMIN_PASSWORD[^}]+\}",
                        password)


def prometheus_entry(compose, tmp_path: Path, config: Path, port: int) -> str:
    """docker-compose.yml's Prometheus command, run here: its paths in `tmp_path`, the local
    `prometheus` binary on 127.0.0.1:`port` (or `true` when port is 0)."""
    script = compose["services"]["prometheus"]["command"][-1].replace("$$", "$")
    binary = (f"{shutil.which('prometheus')} --web.listen-address=127.0.0.1:{port}" if port
              else "true")
    return (script.replace(PROMETHEUS_TOKEN_FILE, str(tmp_path / "health_token"))
            .replace("--storage.tsdb.path=/prometheus", f"--storage.tsdb.path={tmp_path}/data")
            .replace("/etc/prometheus/prometheus.yml", str(config))
            .replace("/bin/prometheus", binary))


def local_prometheus_config(tmp_path: Path, target: str | None = None) -> Path:
    """deploy/prometheus.yml with the repository's alert rules and the token file in
    `tmp_path` (and, given one, another scrape target every second)."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus-alerts.yml")]
    job = config["scrape_configs"][0]
    job["authorization"]["credentials_file"] = str(tmp_path / "health_token")
    if target:
        config["global"]["scrape_interval"] = "1s"
        del job["dns_sd_configs"]
        job["static_configs"] = [{"targets": [target]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_grafana_dashboard_shows_the_funnel():
    """The provisioned dashboard queries every SPEC metric through the provisioned data source."""
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "signup.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" /
                            "signup-funnel.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"]
                   for target in panel.get("targets", [])]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid
    for metric in SPEC_METRICS:
        assert any(metric in expr for expr in expressions), f"no panel shows {metric}"


def test_prometheus_files_pass_promtool(tmp_path):
    """promtool accepts the scrape config, the alert rules and every dashboard query."""
    if not shutil.which("promtool"):
        require("REQUIRE_DEPLOY_TOOLS", "promtool is not installed (apt-get install prometheus)")
    alerts = ROOT / "deploy" / "prometheus-alerts.yml"
    config = local_prometheus_config(tmp_path)
    # promtool checks that the token file exists: write it as compose's Prometheus does.
    token = COMPOSE_REQUIRED["HEALTH_TOKEN"]
    entry = prometheus_entry(yaml.safe_load(COMPOSE_FILE.read_text()), tmp_path, config, 0)
    subprocess.run(["sh", "-ec", entry], env={**os.environ, "HEALTH_TOKEN": token}, check=True)
    assert (tmp_path / "health_token").read_text() == token
    assert stat.S_IMODE((tmp_path / "health_token").stat().st_mode) == 0o600
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" /
                            "signup-funnel.json").read_text())
    rules = [{"record": f"dashboard:panel{panel['id']}_{target['refId']}",
              "expr": target["expr"].replace("$__range", "1h")}
             for panel in dashboard["panels"] for target in panel.get("targets", [])]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard",
                                                                       "rules": rules}]}))
    for args in (["check", "config", str(config)],
                 ["check", "rules", str(alerts)],
                 ["check", "rules", str(tmp_path / "queries.yml")]):
        result = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def compose_client() -> list[str] | None:
    """`docker compose` or `docker-compose`, whichever works here; None without either."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(command[0]):
            continue
        try:
            probe = subprocess.run([*command, "version"], capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if probe.returncode == 0:
            return command
    return None


def test_compose_config_validates(tmp_path):
    """`docker compose config -q` accepts the file (with and without the monitoring profile)."""
    command = compose_client()
    if command is None:
        require("REQUIRE_DEPLOY_TOOLS",
                "no docker compose client here (apt-get install docker-compose)")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("docker-compose.yml", "Dockerfile", ".dockerignore", "deploy"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name)
        else:
            shutil.copy2(source, project / name)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("REDIS_", "GRAFANA_", "WEB_")) and key not in COMPOSE_REQUIRED}

    def config(values: dict, *profile: str) -> subprocess.CompletedProcess:
        (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        return subprocess.run([*command, *profile, "config", "-q"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120)

    # .env.example's development APP_ENV does not matter: compose runs production.
    complete = {"APP_ENV": "development", **COMPOSE_REQUIRED}
    for profile in ([], ["--profile", "monitoring"]):
        result = config(complete, *profile)
        assert result.returncode == 0, result.stdout + result.stderr
    # With any one of the production values empty (as in .env.example), compose refuses to
    # start, naming it.
    for name in COMPOSE_REQUIRED:
        result = config({**complete, name: ""})
        assert result.returncode != 0, name
        assert f"set {name} in .env" in result.stdout + result.stderr, name


@pytest.mark.redis
def test_compose_redis_command_and_health_check_run(compose, tmp_path):
    """The compose Redis command, run with the local redis-server, gives the promised settings,
    and the compose health check passes against it."""
    need_redis_server()
    service = compose["services"]["redis"]
    script = service["command"][-1].replace("$$", "$")
    if redis_version() < (7, 2):
        script = script.replace(" +client|setinfo", "")  # a subcommand Redis 7.0 does not know
    port = free_port()
    script = script.replace("/data/", f"{tmp_path}/").replace(
        "exec redis-server", f"exec redis-server --port {port} --bind 127.0.0.1 --dir {tmp_path}")
    env = {**os.environ, "REDIS_PASSWORD": secrets.token_hex(16),
           "REDIS_ADMIN_PASSWORD": secrets.token_hex(16), "REDIS_MAXMEMORY": "64mb"}
    process = subprocess.Popen(["sh", "-ec", script], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    admin = redis.Redis(port=port, username="admin", password=env["REDIS_ADMIN_PASSWORD"],
                        socket_timeout=2, decode_responses=True)
    try:
        wait_until_answers(admin, process)
        settings = {name: admin.config_get(name)[name]
                    for name in ("appendonly", "appendfsync", "maxmemory-policy", "maxmemory")}
        assert settings == {"appendonly": "yes", "appendfsync": "everysec",
                            "maxmemory-policy": "noeviction", "maxmemory": str(64 * 1024 ** 2)}
        check = healthcheck_text(service).removeprefix("CMD-SHELL ").replace("$$", "$")
        check = check.replace("redis-cli ", f"redis-cli -p {port} ")
        assert subprocess.run(["sh", "-c", check], env=env).returncode == 0
        wrong = subprocess.run(["sh", "-c", check], env={**env, "REDIS_PASSWORD": "wrong"})
        assert wrong.returncode != 0
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, socket_timeout=2).get("signup:x")
    finally:
        admin.close()
        stop(process)


# -- Dockerfile and requirements --------------------------------------------------------------
def test_dockerfile_runs_gunicorn_as_non_root_with_health_check():
    """python:3.11-slim, requirements installed, a non-root USER, HEALTHCHECK on /health."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    text = "\n".join(lines)
    assert lines[0] == "FROM python:3.11-slim"
    assert "pip install -r requirements.txt" in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the service must not run as root"
    assert re.search(r"HEALTHCHECK .*urllib.*/health", text, re.S)
    assert dockerfile_env()["APP_ENV"] == "production"
    cmd = [line for line in lines if line.startswith("CMD ")][-1]  # not HEALTHCHECK's CMD
    assert json.loads(cmd[4:]) == ["gunicorn", "-c", "gunicorn.conf.py", "--bind",
                                   "0.0.0.0:8000", "wsgi:app"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    for secret_or_state in (".env", ".venv", "instance", ".git"):
        assert secret_or_state in ignored


def test_dockerfile_compiles_the_translations():
    """The .mo catalogues are not in git: the image compiles every .po file itself."""
    if not list((ROOT / "translations").glob("*/LC_MESSAGES/*.po")):
        pytest.skip("no translations in this tree")
    assert "pybabel compile -d translations" in (ROOT / "Dockerfile").read_text()


def dockerfile_env() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            found.update(re.findall(r"([A-Z_]+)=(\S+)", line))
    return found


def dockerfile_instruction(name: str) -> list[str]:
    """The exec-form arguments of the Dockerfile's last NAME (CMD, or HEALTHCHECK's CMD)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(name)]
    return json.loads(lines[-1].split("CMD", 1)[1])


def image_env(tmp_path: Path, **changes) -> dict[str, str]:
    """The environment of the image (its ENV, the production values compose requires), here:
    emails to the log (MAIL_LOG_ONLY), memory store, files in `tmp_path`. A change to None
    removes the variable."""
    env = {**os.environ, **dockerfile_env(),
           **{name: COMPOSE_REQUIRED[name] for name in ("SECRET_KEY", "APP_BASE_URL",
                                                        "HEALTH_TOKEN")},
           "MAIL_LOG_ONLY": "on", "REDIS_URL": "memory://",
           "DATABASE_URL": f"sqlite:///{tmp_path}/users.db",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), **changes}
    return {name: value for name, value in env.items() if value is not None}


def image_command(port: int) -> list[str]:
    """The image's CMD, bound to 127.0.0.1:`port` with this checkout's gunicorn."""
    command = dockerfile_instruction("CMD")
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[0] = str(ROOT / ".venv" / "bin" / "gunicorn")
    return [*command, "--no-control-socket"]


@pytest.mark.slow
def test_dockerfile_command_and_health_check_work(tmp_path):
    """The image's CMD serves the app in production (bound to a free local port here) and its
    HEALTHCHECK command exits 0 against it, non-zero when nothing answers."""
    port = free_port()
    health = dockerfile_instruction("HEALTHCHECK")
    health[-1] = health[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    health[0] = sys.executable
    server = subprocess.Popen(image_command(port), cwd=ROOT, env=image_env(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(health, capture_output=True).returncode != 0:
            assert server.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.3)
        # Production: /metrics only with the token.
        metrics = f"http://127.0.0.1:{port}/metrics"
        assert requests.get(metrics, timeout=10).status_code == 401
        bearer = {"Authorization": f"Bearer {COMPOSE_REQUIRED['HEALTH_TOKEN']}"}
        assert requests.get(metrics, headers=bearer, timeout=10).status_code == 200
    finally:
        stop(server)
    assert subprocess.run(health, capture_output=True).returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize(("changes", "named"), [
    ({"HEALTH_TOKEN": None}, "HEALTH_TOKEN"),
    ({"MAIL_LOG_ONLY": None}, "MAIL_SERVER"),
    ({"SECRET_KEY": "changeme" * 5}, "SECRET_KEY"),
], ids=["no-health-token", "no-mail-server", "weak-secret-key"])
def test_image_refuses_to_start_without_production_values(tmp_path, changes, named):
    """The image runs production: without HEALTH_TOKEN, without MAIL_SERVER (and no
    MAIL_LOG_ONLY), or with a weak SECRET_KEY, gunicorn stops with the variable named."""
    result = subprocess.run(image_command(free_port()), cwd=ROOT,
                            env=image_env(tmp_path, **changes), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert f"ConfigError: {named}: " in result.stdout + result.stderr


@pytest.mark.slow
def test_prometheus_scrapes_production_metrics_with_the_token(tmp_path):
    """docker-compose.yml's Prometheus command, run with the local prometheus on
    deploy/prometheus.yml, scrapes /metrics of the app in production (401 without the token):
    its `up` is 1 and the signup_* samples arrive."""
    if not shutil.which("prometheus"):
        require("REQUIRE_DEPLOY_TOOLS", "prometheus is not installed (apt-get install prometheus)")
    app_port, prometheus_port = free_port(), free_port()
    server = subprocess.Popen(image_command(app_port), cwd=ROOT, env=image_env(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prometheus = None
    api = f"http://127.0.0.1:{prometheus_port}/api/v1/query"

    def query(expression: str) -> list:
        """The result vector of an instant query ([] while Prometheus is not answering)."""
        try:
            return requests.get(api, params={"query": expression}, timeout=5).json()["data"][
                "result"]
        except requests.RequestException:
            return []

    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "gunicorn exited"
            try:
                if requests.get(f"http://127.0.0.1:{app_port}/metrics", timeout=5).status_code:
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline, "the app did not answer"
                time.sleep(0.2)
        assert requests.get(f"http://127.0.0.1:{app_port}/metrics", timeout=5).status_code == 401
        config = local_prometheus_config(tmp_path, target=f"127.0.0.1:{app_port}")
        entry = prometheus_entry(yaml.safe_load(COMPOSE_FILE.read_text()), tmp_path, config,
                                 prometheus_port)
        token = {"HEALTH_TOKEN": COMPOSE_REQUIRED["HEALTH_TOKEN"]}
        prometheus = subprocess.Popen(["sh", "-ec", entry], env={**os.environ, **token},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (up := query('up{job="signup"}')):
            assert prometheus.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, "no scrape of the app within 60 s"
            time.sleep(0.2)
        assert up[0]["value"][1] == "1", up  # 0 would be a refused (401) scrape
        assert query('signup_fallback_active{job="signup"}'), "no signup_* sample scraped"
    finally:
        if prometheus is not None:
            stop(prometheus)
        stop(server)


def test_env_example_lists_every_variable():
    """.env.example names every variable the app, gunicorn.conf.py and docker-compose.yml read."""
    from app.config import SETTINGS

    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(),
                            re.M))
    gunicorn_conf = (ROOT / "gunicorn.conf.py").read_text()
    gunicorn = set(re.findall(r"os\.environ(?:\.get|\.setdefault)?\(\s*[\"']([A-Z_]+)",
                              gunicorn_conf))
    gunicorn |= set(re.findall(r"os\.environ\[[\"']([A-Z_]+)", gunicorn_conf))
    compose = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    missing = (set(SETTINGS) | gunicorn | compose) - listed
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_env_example_marks_what_a_deployment_must_set():
    """.env.example works as it is for `make run`; each value production or compose requires
    is marked [deployment] in the comment block above it."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name in [*COMPOSE_REQUIRED, "MAIL_SERVER", "MAIL_DEFAULT_SENDER"]:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        start = index
        while start > 0 and lines[start - 1].strip():
            start -= 1
        assert "[deployment]" in "\n".join(lines[start:index]), name


def test_requirements_cover_every_import():
    """Every third-party package the app imports is pinned in requirements.txt, or required by
    a pinned one (the image installs nothing else)."""
    def normal(name):
        """A distribution name as pip compares them."""
        return re.split(r"[=<>~!;\[ (]", name.strip())[0].lower().replace("_", "-")

    pinned = {normal(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-"))}
    for dist in list(pinned):
        pinned |= {normal(req) for req in importlib.metadata.requires(dist) or []
                   if "extra ==" not in req}
    distributions = importlib.metadata.packages_distributions()
    missing = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "app":
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & pinned:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not in requirements.txt: {sorted(missing)}"


# -- deploy/redis.conf through its ACL user ---------------------------------------------------
class AclRedis:
    """redis-server running deploy/redis.conf on a free port in a temporary folder."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.port = free_port()
        self.app_password = secrets.token_hex(32)
        self.admin_password = secrets.token_hex(32)
        self.process: subprocess.Popen | None = None

    def write_config(self) -> Path:
        """deploy/redis.conf with the host directives replaced and real passwords."""
        kept = [line for line in REDIS_CONF.read_text().splitlines()
                if line.split(" ", 1)[0] not in HOST_DIRECTIVES]
        text = "\n".join(kept).replace("CHANGE-ME-signup-app-password", self.app_password)
        text = text.replace("CHANGE-ME-admin-password", self.admin_password)
        text += (f"\nport {self.port}\nbind 127.0.0.1\ndir {self.dir}\ndaemonize no\n"
                 f"logfile {self.dir / 'redis.log'}\n")
        path = self.dir / "redis.conf"
        path.write_text(text)
        return path

    def start(self) -> "AclRedis":
        """Start it and wait for the admin user to get an answer."""
        self.process = subprocess.Popen(["redis-server", str(self.write_config())],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_answers(self.admin(), self.process)
        return self

    @property
    def app_url(self) -> str:
        """REDIS_URL for the app's ACL user."""
        return f"redis://signup:{self.app_password}@127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        """A client as the admin user."""
        return redis.Redis(port=self.port, username="admin", password=self.admin_password,
                           socket_timeout=5, decode_responses=True)

    def app_client(self) -> redis.Redis:
        """A client as the app's user."""
        return redis.Redis(port=self.port, username="signup", password=self.app_password,
                           socket_timeout=5, decode_responses=True)

    def stop(self) -> None:
        """Stop the server."""
        if self.process:
            stop(self.process)


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory):
    """deploy/redis.conf, running."""
    need_redis_server()
    server = AclRedis(tmp_path_factory.mktemp("acl-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def clean_acl_redis(acl_redis):
    """The ACL Redis emptied, its ACL log reset."""
    admin = acl_redis.admin()
    admin.flushall()
    admin.acl_log_reset()
    admin.close()
    return acl_redis


def refusals(server: AclRedis) -> list[dict]:
    """ACL LOG entries: commands and keys the server refused (CLIENT SETINFO aside, which
    redis-py sends on connect and lets fail)."""
    admin = server.admin()
    try:
        return [entry for entry in admin.acl_log() if entry["object"] != "client|setinfo"]
    finally:
        admin.close()


@pytest.mark.redis
def test_redis_conf_settings_are_in_force(clean_acl_redis):
    """The running deploy/redis.conf has AOF everysec, noeviction, protected mode, no default."""
    admin = clean_acl_redis.admin()
    for name, value in (("appendonly", "yes"), ("appendfsync", "everysec"),
                        ("maxmemory-policy", "noeviction"), ("protected-mode", "yes")):
        assert admin.config_get(name)[name] == value
    users = admin.acl_list()
    assert any(line.startswith("user default off") for line in users), users
    admin.close()


@pytest.mark.redis
def test_whole_signup_flow_through_the_acl_user(clean_acl_redis, make_app, smtp):
    """Signup, wrong code, resend, code, /account, sign-in, /health, the rate limiter and the
    CLI all work through the ACL user, and Redis refused nothing."""
    server = clean_acl_redis
    app = make_app(REDIS_URL=server.app_url, RATELIMIT_ENABLED=True)
    browser = SignupActions(app.test_client(), smtp)
    assert browser.signup(EMAIL, name="Ada").status_code == 303
    first = browser.code_for(EMAIL)
    wrong = "000000" if first != "000000" else "111111"
    assert browser.verify(EMAIL, wrong).status_code == 400
    assert browser.resend(EMAIL).status_code == 303
    code = browser.code_for(EMAIL, count=2)
    response = browser.verify(EMAIL, code)
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/account")
    assert EMAIL in browser.client.get("/account").text
    other = SignupActions(app.test_client(), smtp)
    assert other.login(EMAIL, PASSWORD).headers["Location"].endswith("/account")

    health = app.test_client().get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "healthy", body
    assert body["redis"]["status"] == "healthy"
    assert body["redis"]["connected_clients"] >= 1  # INFO is allowed
    assert body["pending_registrations"]["backend"] == "redis"

    runner = app.test_cli_runner()
    check = runner.invoke(args=["check-redis"])
    assert check.exit_code == 0, check.output
    for args in (["pending", "stats", "--json"], ["pending", "cleanup"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output

    admin = server.admin()
    keys = list(admin.scan_iter(count=1000))
    admin.close()
    assert keys and all(key.startswith("signup:") for key in keys), keys
    # The limiter kept its counters in Redis (not in its memory fallback) under signup:.
    assert any(key.startswith("signup:ratelimit") for key in keys), keys
    assert not app.extensions["pending"].degraded
    assert refusals(server) == []


@pytest.mark.redis
def test_password_resets_and_sign_in_throttle_through_the_acl_user(clean_acl_redis, make_app,
                                                                   smtp):
    """Forgot, a wrong reset code, resets by code and by link, failed sign-ins, the throttle and
    its lifting all work through the app's ACL user, and Redis refused nothing."""
    server = clean_acl_redis
    app = make_app(REDIS_URL=server.app_url, LOGIN_MAX_FAILURES=2)
    browser = SignupActions(app.test_client(), smtp)
    assert browser.signup(EMAIL).status_code == 303
    assert browser.verify(EMAIL, browser.code_for(EMAIL)).status_code == 303
    for _ in range(2):
        assert browser.login(EMAIL, "not the password").status_code == 400
    assert browser.login(EMAIL).status_code == 429
    new_password = "a brand new long passphrase"
    for round_, how in enumerate(("code", "link"), start=2):
        assert browser.post("/password/forgot", {"email": EMAIL}).status_code == 303
        message = text_of(browser.email_to(EMAIL, 2 * round_ - 2))
        code = re.search(r"^\s{4}(\d{6})\s*$", message, re.MULTILINE).group(1)
        link = re.search(r"https?://\S+(/password/reset/\S+)", message).group(1)
        wrong = "000000" if code != "000000" else "111111"
        reset = {"email": EMAIL, "password": new_password, "confirm": new_password}
        assert browser.post("/password/reset", {**reset, "code": wrong}).status_code == 400
        assert browser.client.get(link).status_code == 200
        if how == "code":
            answer = browser.post("/password/reset", {**reset, "code": code})
        else:
            answer = browser.post(link, {"password": new_password, "confirm": new_password})
        assert answer.status_code == 303, how
        new_password, old = "yet another long passphrase", new_password
    assert SignupActions(app.test_client(), smtp).login(EMAIL, old).status_code == 303
    assert not app.extensions["pending"].degraded
    assert refusals(server) == []


@pytest.mark.redis
@pytest.mark.parametrize("command", [("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"),
                                     ("CONFIG", "GET", "*"), ("CONFIG", "SET", "appendonly", "no"),
                                     ("ACL", "LIST"), ("SHUTDOWN",), ("CLIENT", "LIST"),
                                     ("SCRIPT", "FLUSH"),
                                     ("EVAL", "return 1", "0"), ("BGSAVE",), ("MONITOR",)],
                         ids=lambda c: " ".join(c))
def test_acl_user_is_refused_other_commands(clean_acl_redis, command):
    """Commands outside the app's list are refused with NOPERM."""
    client = clean_acl_redis.app_client()
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)
    client.close()


@pytest.mark.redis
def test_acl_user_is_refused_keys_outside_its_prefix(clean_acl_redis):
    """Keys outside signup:* are refused, also from inside a Lua script; anonymous is refused."""
    server = clean_acl_redis
    client = server.app_client()
    client.set("signup:probe", "1")
    assert client.get("signup:probe") == "1"
    for call in (lambda: client.set("other:key", "x"), lambda: client.get("session:1"),
                 lambda: client.delete("other:key")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
    sha = client.script_load("return redis.call('GET', KEYS[1])")
    assert client.evalsha(sha, 1, "signup:probe") == "1"
    with pytest.raises(redis.exceptions.ResponseError, match="(?i)noperm|no permissions"):
        client.evalsha(sha, 1, "other:key")
    client.close()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=server.port, socket_timeout=2).get("signup:probe")


@pytest.mark.redis
def test_backup_as_the_acl_user_skips_redis_with_a_reason(clean_acl_redis, make_app, tmp_path):
    """`backup` through the app's user copies the users but says CONFIG is refused, exit 1;
    through the admin user it copies Redis' snapshot too."""
    server = clean_acl_redis
    app = make_app(REDIS_URL=server.app_url)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["backup", str(tmp_path / "as-app")])
    assert result.exit_code == 1, result.output
    assert "users database: ok" in result.output
    assert "redis: SKIPPED" in result.output and "CONFIG" in result.output
    assert list((tmp_path / "as-app").glob("*/users.db"))

    admin_url = f"redis://admin:{server.admin_password}@127.0.0.1:{server.port}/0"
    result = runner.invoke(args=["backup", str(tmp_path / "as-admin"), "--redis-url", admin_url])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "as-admin").glob("*/redis/dump.rdb"))
    assert list((tmp_path / "as-admin").glob("*/redis/appendonlydir"))


@pytest.mark.redis
def test_sentinel_in_front_of_the_acl_redis(clean_acl_redis, make_app, smtp, tmp_path):
    """With REDIS_SENTINELS, the app and its rate limiter log in to the master Sentinel names
    with REDIS_URL's user and password (its host is not used)."""
    server = clean_acl_redis
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                      f"sentinel monitor signup 127.0.0.1 {server.port} 1\n"
                      f"sentinel auth-user signup admin\n"
                      f"sentinel auth-pass signup {server.admin_password}\n")
    sentinel = subprocess.Popen(["redis-server", str(config), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_answers(redis.Redis(port=port, socket_timeout=2), sentinel)
        url = f"redis://signup:{server.app_password}@sentinel-names-the-host/0"
        app = make_app(REDIS_URL=url, REDIS_SENTINELS=[("127.0.0.1", port)],
                       REDIS_SENTINEL_MASTER="signup", RATELIMIT_ENABLED=True)
        browser = SignupActions(app.test_client(), smtp)
        assert browser.signup(EMAIL).status_code == 303
        response = browser.verify(EMAIL, browser.code_for(EMAIL))
        assert response.headers["Location"].endswith("/account")
        assert app.test_client().get("/health").get_json()["status"] == "healthy"
        check = app.test_cli_runner().invoke(args=["check-redis"])
        assert check.exit_code == 0, check.output
        admin = server.admin()
        keys = list(admin.scan_iter(count=1000))
        admin.close()
        assert any(key.startswith("signup:ratelimit") for key in keys), keys
        assert refusals(server) == []
    finally:
        stop(sentinel)


# -- setup_redis.sh ---------------------------------------------------------------------------
def run_setup(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run setup_redis.sh with arguments; output as text."""
    return subprocess.run(["bash", str(SETUP_REDIS), *args], capture_output=True, text=True,
                          timeout=timeout, env=env if env is not None else os.environ.copy())


def test_setup_redis_parses():
    """bash -n accepts the script."""
    result = subprocess.run(["bash", "-n", str(SETUP_REDIS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_setup_redis_passes_shellcheck():
    """shellcheck (Debian's package) finds nothing."""
    if not shutil.which("shellcheck"):
        require("REQUIRE_SHELLCHECK", "shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", str(SETUP_REDIS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_setup_redis_help():
    """--help exits 0 and names the modes."""
    result = run_setup("--help")
    assert result.returncode == 0
    for word in ("--check", "--apply-settings", "--host", "--port", "--dry-run"):
        assert word in result.stdout


def test_setup_redis_refuses_bad_usage():
    """An unknown option: exit 2 with the usage."""
    result = run_setup("--frobnicate")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


def test_setup_redis_refuses_an_unknown_system(tmp_path):
    """No apt-get, dnf, yum, pacman or brew on PATH: a clear refusal, exit 2, nothing done."""
    (tmp_path / "uname").symlink_to(shutil.which("uname"))
    result = subprocess.run([shutil.which("bash"), str(SETUP_REDIS)], capture_output=True,
                            text=True, env={"PATH": str(tmp_path)}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unsupported system" in result.stderr


@pytest.mark.redis
def test_setup_redis_check_against_our_redis(redis_server):
    """--check --port <the test server> pings, writes and reads under signup:, exit 0."""
    result = run_setup("--check", "--host", "127.0.0.1", "--port", str(redis_server.port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ping: PONG" in result.stdout
    assert "write/read/delete under signup:: ok" in result.stdout
    assert re.search(r"^check: ", result.stdout, re.M)
    assert list(redis_server.client().scan_iter(match="signup:selftest:*")) == []


def test_setup_redis_check_fails_without_redis():
    """--check against a closed port: exit 1 and says so."""
    result = run_setup("--check", "--port", str(free_port()))
    assert result.returncode == 1
    assert "no answer from Redis" in result.stderr


@pytest.mark.redis
def test_setup_redis_apply_settings_to_a_config_file(tmp_path):
    """--apply-settings --config FILE --no-restart writes the settings once (idempotent), and a
    Redis started on that file has them, checked through the ACL users."""
    need_redis_server()
    port = free_port()
    config = tmp_path / "redis.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nappendonly no\n"
                      "maxmemory-policy allkeys-lru\n")
    first = run_setup("--apply-settings", "--config", str(config), "--no-restart")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"@127.0.0.1:{port}/0" in first.stdout  # the REDIS_URL to put in .env
    fragment = tmp_path / "signup-redis.conf"
    written = fragment.read_text()
    second = run_setup("--apply-settings", "--config", str(config), "--no-restart")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already applied" in second.stdout
    assert fragment.read_text() == written, "a second run must keep the passwords"
    assert config.read_text().count(f"include {fragment}") == 1
    assert "CHANGE-ME" not in written
    for directive in HOST_DIRECTIVES:
        assert not re.search(rf"^{directive}\s", written, re.M), directive
    app_password = re.search(r"^user signup on >(\S+)", written, re.M).group(1)
    admin_password = re.search(r"^user admin on >(\S+)", written, re.M).group(1)

    process = subprocess.Popen(["redis-server", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    admin = redis.Redis(port=port, username="admin", password=admin_password, socket_timeout=2,
                        decode_responses=True)
    try:
        wait_until_answers(admin, process)
        assert admin.config_get("appendonly")["appendonly"] == "yes"
        assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        as_app = run_setup("--check", "--port", str(port), "--user", "signup",
                           env={**os.environ, "REDISCLI_AUTH": app_password})
        assert as_app.returncode == 0, as_app.stdout + as_app.stderr
        assert "appendonly yes" in as_app.stdout and "noeviction" in as_app.stdout  # from INFO
        assert "check: OK" in as_app.stdout
        assert admin.acl_log() == [], "the check as the app's user must not be refused anything"
        as_admin = run_setup("--check", "--port", str(port), "--user", "admin",
                             env={**os.environ, "REDISCLI_AUTH": admin_password})
        assert as_admin.returncode == 0, as_admin.stdout + as_admin.stderr
        assert "check: OK" in as_admin.stdout
        anonymous = run_setup("--check", "--port", str(port))
        assert anonymous.returncode == 1
        assert "refuses us" in anonymous.stderr
    finally:
        admin.close()
        stop(process)


def test_setup_redis_dry_run_detects_the_system():
    """--dry-run names the system and package manager and changes nothing."""
    result = run_setup("--dry-run")
    if result.returncode == 2 and "unsupported system" in result.stderr:
        pytest.skip("this machine has none of the supported package managers")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"package manager: (apt|dnf|yum|pacman|brew)", result.stdout)
    assert "dry run: not checking" in result.stdout

"""`/metrics`: the signup_* counters, the token, and sums across gunicorn workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from .conftest import SignupActions
from .e2e.conftest import (PAUSE_SAFE_ARGS, Browser, GunicornServer, code_and_link,
                           new_address)


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} from a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    """One sample's value (0 when absent)."""
    return found.get((name, frozenset(labels.items())), 0.0)


def test_counters_follow_the_flow(make_app, smtp):
    """Signup, wrong code, resend, expired code, verify and a rate limit move their counters."""
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="1/minute", CODE_TTL_SECONDS=3600)
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    actions = SignupActions(client, smtp)
    actions.signup("metrics@example.com")
    code = actions.code_for("metrics@example.com")
    actions.verify("metrics@example.com", "000000" if code != "000000" else "111111")
    actions.resend("metrics@example.com")
    code = actions.code_for("metrics@example.com", count=2)
    assert actions.verify("metrics@example.com", code).status_code == 303
    actions.login("nobody@example.com")
    assert actions.login("nobody@example.com").status_code == 429
    after = samples(client.get("/metrics").get_data(as_text=True))

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("signup_started_total") == 1
    assert grew("signup_emails_sent_total", kind="verification") == 2
    assert grew("signup_wrong_codes_total") == 1
    assert grew("signup_resends_total") == 1
    assert grew("signup_verified_total", method="code") == 1
    assert grew("signup_rate_limited_total", endpoint="account.login") == 1
    assert grew("signup_request_duration_seconds_count", endpoint="signup.signup") >= 2
    assert value(after, "signup_fallback_active") == 0
    assert value(after, "signup_pending_registrations") == 0


def test_expired_and_failed_emails_are_counted(make_app, smtp):
    """An expired code and a failed send have their own counters."""
    from .helpers import free_port

    app = make_app(CODE_TTL_SECONDS=1)
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    actions = SignupActions(client, smtp)
    actions.signup("late@example.com")
    code = actions.code_for("late@example.com")
    app.extensions["pending"].clock = lambda: __import__("time").time() + 5
    assert actions.verify("late@example.com", code).status_code == 400
    broken = make_app(MAIL_PORT=free_port())
    SignupActions(broken.test_client(), smtp).signup("nomail@example.com")
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert value(after, "signup_expired_total") - value(before, "signup_expired_total") == 1
    assert (value(after, "signup_emails_failed_total", kind="verification")
            - value(before, "signup_emails_failed_total", kind="verification")) == 1


def test_pending_gauge_counts_registrations(make_app, smtp):
    """signup_pending_registrations shows the pending count at scrape time."""
    app = make_app()
    client = app.test_client()
    actions = SignupActions(client, smtp)
    actions.signup("gauge1@example.com")
    actions.signup("gauge2@example.com")
    assert value(samples(client.get("/metrics").get_data(as_text=True)),
                 "signup_pending_registrations") == 2


def test_metrics_need_the_health_token_when_set(make_app):
    """With HEALTH_TOKEN set, /metrics answers 401 without the bearer token."""
    app = make_app(HEALTH_TOKEN="s3cret-token")
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and "signup_started_total" in ok.get_data(as_text=True)


def test_metric_labels_never_hold_link_tokens(make_app, smtp):
    """Request timing is labelled by endpoint, so a link token never reaches /metrics."""
    app = make_app()
    client = app.test_client()
    actions = SignupActions(client, smtp)
    actions.signup("label@example.com")
    link = actions.link_for("label@example.com")
    actions.open_link(link)
    text = client.get("/metrics").get_data(as_text=True)
    token = link.rsplit("/", 1)[1]
    assert token not in text and 'endpoint="verify.link"' in text


def worker_samples(metrics_dir: Path, pid: int, scratch: Path) -> dict:
    """The samples one worker wrote: its own files of the multiprocess folder, summed alone."""
    own = scratch / f"metrics-{pid}"
    own.mkdir()
    for path in metrics_dir.glob(f"*_{pid}.db"):
        shutil.copy(path, own)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(own))
    return samples(generate_latest(registry).decode())


@pytest.mark.slow
@pytest.mark.redis
def test_counters_are_summed_across_two_gunicorn_workers(tmp_path, redis_url, smtp_server):
    """A full run under gunicorn with 2 workers, each made to serve 3 signups: /metrics shows
    the totals of both, and each worker's own sample files hold its 3.

    Which worker accepts a connection is the kernel's choice, so every other worker is paused
    while one serves its share (GunicornServer.only_worker): the split is the same on every run.
    """
    metrics_dir = tmp_path / "metrics"
    server = GunicornServer(tmp_path, redis_url, smtp_server.port, workers=2,
                            extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                            extra_args=PAUSE_SAFE_ARGS).start()
    try:
        per_worker = 3
        pids = server.worker_pids()
        for pid in pids:
            with server.only_worker(pid):
                for _ in range(per_worker):
                    browser = Browser(server.base_url, new_connection_per_request=True)
                    address = new_address("metrics")
                    assert browser.signup(address).status_code == 303
                    code, _link = code_and_link(smtp_server, address)
                    assert browser.verify(address, code).status_code == 303
        for pid in pids:
            own = worker_samples(metrics_dir, pid, tmp_path)
            assert value(own, "signup_started_total") == per_worker, pid
            assert value(own, "signup_verified_total", method="code") == per_worker, pid
        signups = per_worker * len(pids)
        text = requests.get(server.base_url + "/metrics", timeout=10).text
        found = samples(text)
        assert value(found, "signup_started_total") == signups
        assert value(found, "signup_verified_total", method="code") == signups
        assert value(found, "signup_emails_sent_total", kind="verification") == signups
        assert value(found, "signup_request_duration_seconds_count",
                     endpoint="verify.verify") >= 2 * signups  # each verify: GET form + POST
    finally:
        server.stop()

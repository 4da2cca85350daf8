"""Verifying with the emailed link: GET changes nothing (mail scanners), POST verifies, used,
unknown and dead links answer 404, and another browser needs the password.
"""

from __future__ import annotations

from app.security import link_token_address_id, new_link_token

from .helpers import (EMAIL, OTHER_PASSWORD, PASSWORD, SignupActions, assert_redirect,
                      field_errors, path_of, pending, signed_in_as, signed_up, users, wrong)
from .helpers import backend_with_cluster  # noqa: F401 (a fixture: memory, redis and cluster)


def redis_snapshot(request, backend) -> dict | None:
    """Every key and value on the test redis-server (None on the memory backend)."""
    if backend != "redis":
        return None
    client = request.getfixturevalue("redis_server").client()
    snapshot = {}
    for key in client.scan_iter(match="*"):
        kind = client.type(key)
        if kind == b"hash":
            snapshot[key] = client.hgetall(key)
        elif kind == b"zset":
            snapshot[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            snapshot[key] = client.get(key) if kind == b"string" else kind
    return snapshot


def test_link_get_changes_nothing(flow_app, browser, backend, request):
    """GET of the link (a mail scanner) shows a confirm button and changes nothing."""
    _, link = signed_up(browser)
    before = pending(flow_app)
    stored_before = redis_snapshot(request, backend)
    for _ in range(2):
        page = browser.open_link(link)
        assert page.status_code == 200
        assert "<form" in page.text and 'type="submit"' in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert pending(flow_app) == before
    assert redis_snapshot(request, backend) == stored_before
    assert users(flow_app) == []
    assert not signed_in_as(browser)


def test_code_still_works_after_link_get(flow_app, browser):
    """Opening the link with GET leaves the code usable."""
    code, link = signed_up(browser)
    assert browser.open_link(link).status_code == 200
    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert [row[0] for row in users(flow_app)] == [EMAIL]


def test_link_post_verifies(flow_app, browser):
    """POST on the link page verifies and lands on /account; link pages send no referrer."""
    _, link = signed_up(browser)
    page = browser.open_link(link)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "a***@example.com" in page.text
    response = browser.confirm_link(link)
    assert_redirect(response, "/account")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert signed_in_as(browser)
    assert pending(flow_app) is None
    assert [row[0] for row in users(flow_app)] == [EMAIL]


def test_used_link_answers_404_offering_resend(flow_app, browser):
    """A link used once answers 404, on GET and POST, with a page offering resend."""
    _, link = signed_up(browser)
    assert_redirect(browser.confirm_link(link), "/account")
    page = browser.open_link(link)
    assert page.status_code == 404
    assert 'href="/resend"' in page.text
    response = browser.post(path_of(link), {}, form_path="/resend")
    assert response.status_code == 404 and 'href="/resend"' in response.text
    assert len(users(flow_app)) == 1


def test_link_dead_after_verifying_by_code(flow_app, browser):
    """Once verified by code, the emailed link answers 404."""
    code, link = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    page = browser.open_link(link)
    assert page.status_code == 404 and 'href="/resend"' in page.text


def test_unknown_link_answers_404(flow_app, browser):
    """A made-up token answers 404 with the resend offer."""
    page = browser.client.get("/verify/" + "A" * 43)
    assert page.status_code == 404 and 'href="/resend"' in page.text


def test_link_names_the_pending_record(flow_app, browser):
    """The emailed token is `<address id>-<secret>`: the id of the record it verifies (so the
    link page reads one record); the same id with another secret is a 404."""
    _, link = signed_up(browser)
    token = link.rsplit("/", 1)[1]
    with flow_app.app_context():
        address_id = flow_app.extensions["pending"].address_id(EMAIL)
    assert link_token_address_id(token) == address_id
    forged = new_link_token(address_id)
    assert browser.client.get("/verify/" + forged).status_code == 404
    assert browser.post("/verify/" + forged, {}, form_path="/resend").status_code == 404
    assert browser.open_link(link).status_code == 200


def test_link_not_affected_by_wrong_codes(build, smtp):
    """Wrong codes up to the per-code cap do not stop the link."""
    app = build(CODE_MAX_ATTEMPTS=2)
    browser = SignupActions(app.test_client(), smtp)
    code, link = signed_up(browser)
    for _ in range(2):
        browser.verify(EMAIL, wrong(code))
    assert_redirect(browser.confirm_link(link), "/account")


def test_link_in_other_browser_needs_the_password(flow_app, browser, other):
    """Link in another browser: refused without or with a wrong password, works with the right."""
    _, link = signed_up(browser)
    page = other.open_link(link)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert 'name="password"' not in browser.open_link(link).text

    response = other.confirm_link(link)
    assert response.status_code == 400 and field_errors(response, "password")
    response = other.confirm_link(link, password=OTHER_PASSWORD)
    assert response.status_code == 400 and field_errors(response, "password")
    assert users(flow_app) == [] and pending(flow_app) is not None

    assert_redirect(other.confirm_link(link, password=PASSWORD), "/account")
    assert signed_in_as(other)
    assert [row[0] for row in users(flow_app)] == [EMAIL]

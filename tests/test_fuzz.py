"""Property-based tests: arbitrary input to every form and route never causes a 5xx or a store."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .helpers import csrf_token

FORMS = {
    "/signup": ["email", "password", "confirm", "name"],
    "/verify": ["email", "code", "password"],
    "/resend": ["email"],
    "/login": ["email", "password"],
    "/logout": [],
    "/account/password": ["current_password", "password", "confirm"],
    "/account/delete": ["password"],
}
NASTY = st.sampled_from([
    "", " ", "\x00", "\r\n", "a@b.c\r\nBcc: victim@evil.test", "victim@evil.test\nBcc: x@evil.test",
    "１２３４５６", "١٢٣٤٥٦", "12345６", "123 456", "--------", "x" * 70_000, "\u2028", "\u202e",
    "<script>alert(1)</script>", "' OR 1=1 --", "%00", "\ud7ff", "a@" + "b" * 300 + ".com",
])
VALUES = st.one_of(st.text(max_size=300), NASTY,
                   st.text(alphabet=string.printable, max_size=80),
                   st.integers().map(str))
EXAMPLES = 150
COUNTED = {"cases": 0}


def _fields(names):
    """A form with any subset of its fields, arbitrary values, and sometimes unknown fields."""
    return st.fixed_dictionaries({}, optional={name: VALUES for name in names + ["extra", ""]})


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, smtp_server):
    """One app (memory store) and one browser for the whole module, to keep examples fast."""
    from app import create_app
    from app.config import TestConfig

    db = tmp_path_factory.mktemp("fuzz") / "users.db"
    app = create_app({**TestConfig.values, "DATABASE_URL": f"sqlite:///{db}",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db}", "MAIL_SERVER": "127.0.0.1",
                      "MAIL_PORT": smtp_server.port})
    client = app.test_client()
    token = csrf_token(client.get("/signup").text)
    smtp_server.clear()  # earlier modules' emails are not this module's doing
    return app, client, token, smtp_server


def _assert_harmless(env, response):
    """No 5xx, no traceback, nothing stored, no email unless the request was accepted."""
    app, _client, _token, smtp = env
    COUNTED["cases"] += 1
    assert response.status_code < 500, response.status_code
    assert "Traceback" not in response.get_data(as_text=True)
    if response.status_code not in (302, 303):
        stats = app.extensions["pending"].get_stats()
        assert stats["total"] == 0, "a rejected request stored a pending registration"
        assert not smtp.messages, "a rejected request sent an email"
    # Accepted requests are cleaned up so the next example starts empty.
    smtp.clear()
    app.extensions["pending"].memory.__init__()


@pytest.mark.parametrize("path", sorted(FORMS))
def test_forms_survive_arbitrary_fields(fuzz_env, path):
    """Arbitrary text, control characters, CR/LF, NUL, Unicode digits, missing fields."""

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=_fields(FORMS[path]), with_token=st.booleans())
    def run(data, with_token):
        _app, client, token, _smtp = fuzz_env
        payload = dict(data)
        if with_token:
            payload["csrf_token"] = token
        _assert_harmless(fuzz_env, client.post(path, data=payload))

    run()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000), path=st.sampled_from(sorted(FORMS) + ["/verify/abc"]))
def test_raw_bytes_bodies(fuzz_env, body, path):
    """Non-UTF-8 and malformed form bodies."""
    _app, client, _token, _smtp = fuzz_env
    response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    _assert_harmless(fuzz_env, response)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=400), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_link_tokens_and_methods(fuzz_env, token, method):
    """Arbitrary link tokens and wrong methods on the link route."""
    _app, client, csrf, _smtp = fuzz_env
    path = "/verify/" + "".join(ch for ch in token if ch not in "/?#%") or "/verify/x"
    response = client.open(path, method=method, data={"csrf_token": csrf, "password": token})
    _assert_harmless(fuzz_env, response)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(alphabet=string.ascii_letters + string.digits + "/._-~%", max_size=60),
       method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
def test_unknown_routes_and_methods(fuzz_env, path, method):
    """Unknown routes and wrong methods answer 4xx pages."""
    _app, client, _csrf, _smtp = fuzz_env
    _assert_harmless(fuzz_env, client.open("/" + path.lstrip("/"), method=method))


def test_huge_body_is_refused(fuzz_env):
    """A body over MAX_CONTENT_LENGTH gets 413, not a 500."""
    _app, client, token, _smtp = fuzz_env
    response = client.post("/signup", data={"csrf_token": token, "email": "a" * 100_000})
    assert response.status_code == 413


def test_report_case_count():
    """Print how many generated cases ran (for the issue's note)."""
    print(f"\nfuzz: {COUNTED['cases']} generated cases")
    assert COUNTED["cases"] >= EXAMPLES

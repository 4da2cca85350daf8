"""A first end-to-end pass through the test client."""

from .helpers import PASSWORD


def test_signup_then_code_then_account(actions, smtp):
    response = actions.signup("Ada@Example.com", name="Ada")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/verify")
    code = actions.code_for("ada@example.com")
    response = actions.verify("ada@example.com", code)
    assert response.status_code == 303 and response.headers["Location"].endswith("/account")
    page = actions.client.get("/account")
    assert page.status_code == 200 and "ada@example.com" in page.text
    assert actions.login("ada@example.com", PASSWORD).status_code == 303

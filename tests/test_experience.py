"""The person's experience without a browser: typo hints, the waiting page's status, the resend
countdown's words, the language switcher, accessible markup, and every page and email in
Turkish. (tests/e2e/test_browser.py drives the same in Chromium.)"""

from __future__ import annotations

import html
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.typos import suggest

from .catalogs import ROOT, compile_catalogs, po_files
from .conftest import PASSWORD, SignupActions
from .helpers import CODE_RE, csrf_token, html_of, text_of

EMAIL = "ada@example.com"
TR = {"Accept-Language": "tr-TR,tr;q=0.9"}


@pytest.fixture(scope="module", autouse=True)
def catalogs():
    """The compiled Turkish catalogue (make test builds it; a bare pytest run may not have)."""
    compile_catalogs()


@pytest.fixture
def turkish(app, smtp):
    """A browser whose Accept-Language prefers Turkish."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = TR["Accept-Language"]
    return SignupActions(client, smtp)


def pending(app, email):
    """The pending registration for `email`, or None."""
    with app.app_context():
        return app.extensions["pending"].get_registration(email)


def text(page) -> str:
    """A page's HTML with entities decoded."""
    return html.unescape(page.text)


def verified(actions, email=EMAIL):
    """Sign up and verify `email` with `actions`' browser."""
    assert actions.signup(email).status_code == 303
    count = len(actions.smtp.to(email))
    assert actions.verify(email, actions.code_for(email, count)).status_code == 303


# -- typo hints -------------------------------------------------------------------------------
@pytest.mark.parametrize("typed, expected", [
    ("ada@gmial.com", "ada@gmail.com"), ("ada@gmail.con", "ada@gmail.com"),
    ("ada@hotnail.com", "ada@hotmail.com"), ("ada@yaho.com", "ada@yahoo.com"),
    ("ada@outlok.com", "ada@outlook.com"), ("ada@icloud.cm", "ada@icloud.com"),
    ("ada@yandex.com.rt", "ada@yandex.com.tr"), ("ada@company.con", "ada@company.com"),
    ("ada@gmail.com", None), ("ada@mail.com", None), ("ada@email.com", None),
    ("ada@yahoo.fr", None), ("ada@live.fr", None), ("ada@gmx.at", None),
    ("ada@example.com", None), ("ada@xn--bcher-kva.example", None),
])
def test_typo_suggestions(typed, expected):
    """Common-domain slips get a suggestion; real domains near them never do."""
    assert suggest(typed) == expected


def test_typo_question_stores_nothing_until_answered(app, actions, smtp):
    """"gmial.com": 200 with the question and both passwords kept; nothing stored or sent."""
    page = actions.signup("ada@gmial.com")
    assert page.status_code == 200
    assert "Did you mean ada@gmail.com?" in text(page)
    assert re.search(r'<button[^>]*name="choice"[^>]*value="suggested"[^>]*autofocus', page.text)
    assert 'name="typed_email" type="hidden" value="ada@gmial.com"' in page.text
    assert page.text.count(f'value="{PASSWORD}"') == 2  # answering is one press
    assert pending(app, "ada@gmial.com") is None and pending(app, "ada@gmail.com") is None
    assert smtp.messages == []


@pytest.mark.parametrize("choice, stored", [("suggested", "ada@gmail.com"),
                                            ("typed", "ada@gmial.com")])
def test_typo_answer_decides_the_address(app, actions, smtp, choice, stored):
    """Either answer goes on to /verify with the chosen address; the other gets nothing."""
    response = actions.post("/signup", {"email": "ada@gmial.com", "password": PASSWORD,
                                        "confirm": PASSWORD, "typed_email": "ada@gmial.com",
                                        "choice": choice})
    assert response.status_code == 303 and response.headers["Location"].endswith("/verify")
    assert pending(app, stored) is not None
    other = {"ada@gmail.com", "ada@gmial.com"} - {stored}
    assert pending(app, other.pop()) is None
    assert smtp.wait_for(stored)


def test_edited_address_wins_over_the_suggestion(app, actions):
    """If the person edits the field instead, "use the suggestion" does not override the edit."""
    response = actions.post("/signup", {"email": "bob@example.com", "password": PASSWORD,
                                        "confirm": PASSWORD, "typed_email": "ada@gmial.com",
                                        "choice": "suggested"})
    assert response.status_code == 303
    assert pending(app, "bob@example.com") is not None and pending(app, "ada@gmail.com") is None


# -- the waiting page's status ---------------------------------------------------------------
def test_status_is_none_without_a_signup(client):
    """A browser that signed up for nothing gets "none" (it cannot ask about any address)."""
    assert client.get("/verify/status").get_json() == {"status": "none"}
    assert client.get("/verify/status?email=ada@example.com").get_json() == {"status": "none"}
    assert client.get("/verify/done").status_code == 302


def test_status_moves_to_verified_when_verified_elsewhere(app, actions, smtp):
    """pending while waiting; verified once another browser used the code with the password."""
    assert actions.signup(EMAIL).status_code == 303
    page = actions.client.get("/verify")
    assert 'data-status-url="/verify/status"' in page.text
    assert actions.client.get("/verify/status").get_json() == {"status": "pending"}
    assert actions.client.get("/verify/done").status_code == 302  # not yet

    phone = SignupActions(app.test_client(), smtp)
    assert phone.verify(EMAIL, actions.code_for(EMAIL), password=PASSWORD).status_code == 303
    assert actions.client.get("/verify/status").get_json() == {"status": "verified"}
    done = actions.client.get("/verify/done")
    assert done.status_code == 200 and "Your address is verified" in text(done)
    assert 'href="/login"' in done.text
    assert actions.client.get("/account").status_code == 302  # not signed in here
    assert f'value="{EMAIL}"' in actions.client.get("/login").text


def test_status_does_not_reveal_an_existing_account(app, smtp):
    """A taken address stays "pending" exactly like a new one, and /verify/done stays closed."""
    verified(SignupActions(app.test_client(), smtp))
    for address in (EMAIL, "new@example.com"):
        prober = SignupActions(app.test_client(), smtp)
        assert prober.signup(address, password="another long passphrase").status_code == 303
        status = prober.client.get("/verify/status")
        assert (status.status_code, status.get_json()) == (200, {"status": "pending"})
        assert prober.client.get("/verify/done").status_code == 302


# -- the resend countdown, in words -----------------------------------------------------------
def test_verify_and_resend_pages_state_the_wait(make_app, smtp):
    """After a signup, /verify and /resend say when a new code can be asked for."""
    app = make_app(RESEND_COOLDOWN_SECONDS=60)
    actions = SignupActions(app.test_client(), smtp)
    assert actions.signup(EMAIL).status_code == 303
    for path in ("/verify", "/resend"):
        page = actions.client.get(path)
        match = re.search(r'data-countdown="(\d+)"', page.text)
        assert match and 55 <= int(match.group(1)) <= 60, path
        assert re.search(r"You can ask for a new code in <time[^>]*>[01]:\d\d</time>\.",
                         page.text), path
    verify_page = actions.client.get("/verify").text
    assert re.search(r'<form method="post" action="/resend"', verify_page)
    assert 'href="/signup">Use a different address' in verify_page
    assert "The code is valid for 60 minutes." in text(actions.client.get("/verify"))
    refused = actions.resend(EMAIL)
    assert refused.status_code == 429 and 'data-countdown="' in refused.text


def test_no_countdown_once_the_wait_is_over(actions):
    """With no cooldown the resend button is simply there, with no countdown."""
    assert actions.signup(EMAIL).status_code == 303
    page = actions.client.get("/verify")
    assert "data-countdown" not in page.text and "Send a new code" in page.text


# -- the language switcher --------------------------------------------------------------------
def test_language_switcher_remembers_the_choice(client):
    """POST /lang (with CSRF) sets the language and returns to the page it was chosen on."""
    page = client.get("/signup")
    assert '<html lang="en">' in page.text
    response = client.post("/lang", data={"lang": "tr", "next": "/signup",
                                          "csrf_token": csrf_token(page.text)})
    assert response.status_code == 303 and response.headers["Location"] == "/signup"
    assert '<html lang="tr">' in client.get("/signup").text
    assert '<html lang="tr">' in client.get("/login").text
    # The choice wins over the browser's Accept-Language.
    assert '<html lang="tr">' in client.get("/", headers={"Accept-Language": "en"}).text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "evil",
                                    "/\\evil.example", ""])
def test_language_switcher_only_returns_to_this_site(client, target):
    """`next` pointing elsewhere goes to the start page instead (no open redirect)."""
    token = csrf_token(client.get("/").text)
    response = client.post("/lang", data={"lang": "tr", "next": target, "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_language_switcher_needs_csrf_and_a_known_language(client):
    """No token: 400 and nothing changes; an unknown language is ignored."""
    assert client.post("/lang", data={"lang": "tr", "next": "/"}).status_code == 400
    token = csrf_token(client.get("/").text)
    client.post("/lang", data={"lang": "xx", "next": "/", "csrf_token": token})
    assert '<html lang="en">' in client.get("/").text


def test_accept_language_picks_turkish(client):
    """Without a choice, the browser's Accept-Language decides."""
    assert '<html lang="tr">' in client.get("/", headers=TR).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "de, en"}).text


# -- accessible markup ------------------------------------------------------------------------
def test_every_input_has_a_label_and_the_right_autocomplete(app, actions):
    """Labels for every visible input; autocomplete and inputmode where the issue asks."""
    assert actions.signup(EMAIL).status_code == 303
    other = app.test_client()
    pages = {"/signup": actions.client, "/login": actions.client, "/resend": actions.client,
             "/verify": other}
    for path, client in pages.items():
        page = client.get(path).text
        inputs = re.findall(r"<input[^>]*>", page)
        for tag in inputs:
            if 'type="hidden"' in tag:
                continue
            field_id = re.search(r'id="([^"]+)"', tag).group(1)
            assert f'<label for="{field_id}">' in page, (path, field_id)
    signup = actions.client.get("/signup").text
    assert re.search(r'<input[^>]*autocomplete="email"[^>]*id="email"', signup)
    assert signup.count('autocomplete="new-password"') == 2
    verify = other.get("/verify").text
    code = re.search(r'<input[^>]*id="code"[^>]*>', verify).group(0)
    assert 'autocomplete="one-time-code"' in code and 'inputmode="numeric"' in code
    assert 'autocomplete="current-password"' in verify


def test_errors_are_linked_announced_and_focused(actions):
    """Field errors: summary (role=alert) linking to fields, aria-describedby, autofocus."""
    page = actions.signup("not an address", password="short")
    assert page.status_code == 400
    assert 'role="alert" id="error-summary"' in page.text
    assert '<a href="#email">' in page.text and '<a href="#password">' in page.text
    email = re.search(r'<input[^>]*id="email"[^>]*>', page.text).group(0)
    assert "autofocus" in email and 'aria-invalid="true"' in email
    assert 'aria-describedby="email-error"' in email
    password = re.search(r'<input[^>]*id="password"[^>]*>', page.text).group(0)
    assert "autofocus" not in password
    assert 'aria-describedby="password-hint password-error"' in password


# -- Turkish everywhere -----------------------------------------------------------------------
def test_catalogue_is_complete():
    """Every user-facing string in app/ and templates/ has a Turkish translation, none fuzzy."""
    method_map, options_map = parse_mapping_cfg(open(ROOT / "babel.cfg", encoding="utf-8"))
    in_sources = {message[2] if isinstance(message[2], str) else message[2][0]
                  for message in extract_from_dir(
                      str(ROOT), method_map, options_map,
                      keywords={"_": None, "gettext": None, "ngettext": (1, 2), "_l": None,
                                "lazy_gettext": None})}
    (po,) = po_files()
    with po.open("rb") as handle:
        catalog = read_po(handle)
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert all(strings) and not message.fuzzy, f"untranslated or fuzzy: {key!r}"
        translated[key] = strings
    missing = sorted(in_sources - translated.keys())
    assert not missing, f"run `make messages` and translate: {missing}"


TURKISH_PAGES = {
    "/": "Hesabınızı oluşturun",
    "/signup": "Kaydol",
    "/verify": "E-postanızı kontrol edin",
    "/resend": "Yeni kod gönder",
    "/login": "Giriş yap",
    "/logout": "Çıkış yap",
    "/no-such-page": "Sayfa bulunamadı",
    "/verify/not-a-real-token": "Bu bağlantı artık geçerli değil",
}


@pytest.mark.parametrize("path", sorted(TURKISH_PAGES))
def test_every_page_exists_in_turkish(turkish, path):
    """<html lang="tr">, a Turkish heading, and no English from the English version."""
    page = turkish.client.get(path)
    assert '<html lang="tr">' in page.text
    assert f"<h1>{TURKISH_PAGES[path]}</h1>" in text(page)
    english = turkish.client.get(path, headers={"Accept-Language": "en"})
    english_h1 = re.search(r"<h1>(.*?)</h1>", english.text).group(1)
    assert english_h1 not in page.text


def test_turkish_signup_pages_and_emails(app, turkish, smtp):
    """A Turkish signup: Turkish errors, /verify, email (text and HTML), link page, /account."""
    weak = turkish.signup(EMAIL, password="short")
    assert "En az 8 karakter kullanın." in text(weak)
    common = turkish.signup(EMAIL, password="password123")
    assert "Bu parola çok yaygın" in text(common)
    assert turkish.signup(EMAIL, name="Ayşe").status_code == 303
    assert "adresine 6 haneli bir kod" in text(turkish.client.get("/verify"))
    message = smtp.wait_for(EMAIL)
    assert message["Subject"] == "Doğrulama kodunuz"
    body = text_of(message)
    assert "Doğrulama kodunuz:" in body and "60 dakika" in body and "24 saat" in body
    assert "birisi ada@example.com adresiyle kaydolduğu için" in body
    code = CODE_RE.search(body).group(1)
    page = html_of(message)
    assert '<html lang="tr">' in page and code in page and "Adresimi doğrula" in page
    link = turkish.link_for(EMAIL)
    assert re.search(rf'<a href="{re.escape(link)}"[^>]*>Adresimi doğrula</a>', page)
    assert "Adresinizi doğrulayın" in text(turkish.open_link(link))
    assert turkish.confirm_link(link).status_code == 303
    account = text(turkish.client.get("/account"))
    assert "<h1>Hesabınız</h1>" in account and "Ayşe" in account and "Üyelik tarihi" in account


def test_other_emails_in_turkish(app, turkish, smtp):
    """"You already have an account" and "no signup is waiting" in the person's language."""
    verified(SignupActions(app.test_client(), smtp))
    assert turkish.signup(EMAIL).status_code == 303
    existing = smtp.wait_for(EMAIL, 2)  # after the verification email
    assert existing["Subject"] == "Zaten bir hesabınız var"
    assert "Bu sizseniz buradan giriş yapın:" in text_of(existing)
    assert "Giriş yap</a>" in html_of(existing)
    assert turkish.resend("nobody@example.com").status_code == 303
    nothing = smtp.wait_for("nobody@example.com")
    assert nothing["Subject"] == "Bu adres için bekleyen bir kayıt yok"
    assert "Hesap açmak istiyorsanız buradan kaydolun:" in text_of(nothing)


def test_english_email_reads_well(actions, smtp):
    """The code on a line of its own, the link as a button, the expiry, and why it was sent."""
    assert actions.signup(EMAIL).status_code == 303
    message = smtp.wait_for(EMAIL)
    body = text_of(message)
    code = CODE_RE.search(body).group(1)
    assert "within 60 minutes" in body and "valid for 24 hours" in body
    assert "because someone signed up with ada@example.com" in body
    page = html_of(message)
    assert re.search(rf">{code}</p>", page) and "font-size: 36px" in page
    assert re.search(r'<a href="http[^"]+/verify/[^"]+"[^>]*>Confirm my address</a>', page)
    assert "The link is valid for 24 hours" in page

"""English and Turkish: the language switcher, Accept-Language, a complete catalogue, every page
and email in Turkish, and the English email's wording.
"""

from __future__ import annotations

import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import render_template_string
from flask_babel import force_locale

from .catalogs import po_files
from .helpers import (CODE_RE, EMAIL, ROOT, SignupActions, csrf_token, html_of, page_text, text_of,
                      verified)


TR = {"Accept-Language": "tr-TR,tr;q=0.9"}


@pytest.fixture
def turkish(app, smtp):
    """A browser whose Accept-Language prefers Turkish."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = TR["Accept-Language"]
    return SignupActions(client, smtp)


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


def test_language_switch_with_control_characters_in_next_goes_home(make_app):
    """A `next` with CR/LF or a tab is refused (no 500, no header injection): back to /."""
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    for target in ("/\r\nSet-Cookie: a=b", "/\tfoo", "/x\x7f"):
        response = client.post("/lang", data={"lang": "tr", "next": target})
        assert response.status_code == 303
        assert response.headers["Location"] == "/"


def test_accept_language_picks_turkish(client):
    """Without a choice, the browser's Accept-Language decides."""
    assert '<html lang="tr">' in client.get("/", headers=TR).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "de, en"}).text


def test_each_language_has_its_own_page(app):
    english = app.test_client().get("/signup", headers={"Accept-Language": "en"}).text
    turkish = app.test_client().get("/signup", headers={"Accept-Language": "tr"}).text
    assert '<html lang="en">' in english and '<html lang="tr">' in turkish
    assert "Kaydol" in turkish and "Kaydol" not in english


def test_template_text_follows_a_forced_language(app):
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        template = "{{ _('Sign up') }}"
        assert render_template_string(template) == "Sign up"
        with force_locale("tr"):
            assert render_template_string(template) == "Kaydol"
        assert render_template_string(template) == "Sign up"


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


@pytest.mark.parametrize("path", sorted(TURKISH_PAGES))
def test_every_page_exists_in_turkish(turkish, path):
    """<html lang="tr">, a Turkish heading, and no English from the English version."""
    page = turkish.client.get(path)
    assert '<html lang="tr">' in page.text
    assert f"<h1>{TURKISH_PAGES[path]}</h1>" in page_text(page)
    english = turkish.client.get(path, headers={"Accept-Language": "en"})
    english_h1 = re.search(r"<h1>(.*?)</h1>", english.text).group(1)
    assert english_h1 not in page.text


def test_turkish_signup_pages_and_emails(app, turkish, smtp):
    """A Turkish signup: Turkish errors, /verify, email (text and HTML), link page, /account."""
    weak = turkish.signup(EMAIL, password="short")
    assert "En az 8 karakter kullanın." in page_text(weak)
    common = turkish.signup(EMAIL, password="password123")
    assert "Bu parola çok yaygın" in page_text(common)
    assert turkish.signup(EMAIL, name="Ayşe").status_code == 303
    assert "adresine 6 haneli bir kod" in page_text(turkish.client.get("/verify"))
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
    assert "Adresinizi doğrulayın" in page_text(turkish.open_link(link))
    assert turkish.confirm_link(link).status_code == 303
    account = page_text(turkish.client.get("/account"))
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

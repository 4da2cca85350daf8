"""Fast paths: form pages rendered once per language and variant (FAST_PATHS, on by default).

A blank form page (`GET /signup`) is the same for every visitor but for its CSRF token, and the
page that refuses a code differs between visitors only in a few strings (the typed address, the
message, the masked address) besides the token. Rendering those pages through Jinja each time
cost several times what serving them does (docs/performance.md). So the first request for a page
in a language (and variant) renders it with random placeholders where those strings go, and
every later one puts this request's values into that text, HTML-escaped as the template escapes
them. Anything else that makes a page personal (flashed messages, a query string, a signed-in
header) is rendered normally instead.

Public APIs only: the token is Flask-WTF's `generate_csrf()` (so its session key and format
are Flask-WTF's), and the placeholder reaches the page through the template context, where it
shadows the `csrf_token()` global for that one render. The session cookie is Flask's, its
serializer kept between requests (sessions.py). With FAST_PATHS off, every page is rendered and
Flask's own session interface is used; `tests/test_fastpaths.py` holds the two paths byte for
byte together (pages and session cookies), for every language.
"""

from __future__ import annotations

import secrets

from flask import current_app, render_template, request, session
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from markupsafe import escape


class PageCache:
    """Rendered pages, one cache per app: (template, mount, path, language, variant) -> text."""

    def __init__(self):
        # Random per process, so no visitor can type it into a field and have it replaced.
        self.placeholder = f"placeholder-{secrets.token_hex(16)}"
        self.pages: dict[tuple, str] = {}

    def render(self, template: str, variant: tuple, slots: dict, make_context) -> str:
        """The page for `variant` with `slots` (name -> text) and this request's CSRF token.

        `make_context(texts)` builds the template's context with `texts[name]` wherever a slot's
        value belongs; `variant` must hold everything else the page depends on (a finite set of
        values, so the cache stays bounded).
        """
        key = (template, request.script_root, request.path, str(get_locale()), variant)
        page = self.pages.get(key)
        if page is None:
            texts = {name: f"{self.placeholder}-{name}-" for name in slots}
            placeholder = self.placeholder
            page = render_template(template, **make_context(texts),
                                   csrf_token=lambda: placeholder)
            self.pages[key] = page
        for name, value in slots.items():
            page = page.replace(f"{self.placeholder}-{name}-", escape(value))
        return page.replace(self.placeholder, generate_csrf())


def enabled() -> bool:
    """Whether this request may get a page from the cache: the fast paths are on, and the page
    is the same for everyone but for its slots (no flashed message, query string or signed-in
    header; templates not being reloaded)."""
    return (current_app.config["FAST_PATHS"] and not request.query_string
            and "_flashes" not in session and not session.get("user_id")
            and not current_app.debug and not current_app.config.get("TEMPLATES_AUTO_RELOAD"))


def blank_page(template: str, make_form) -> str:
    """A blank form page on a GET; `make_form()` builds the blank form for a render."""
    if request.method != "GET" or not enabled():
        return render_template(template, form=make_form())
    return current_app.extensions["fastpaths"].render(
        template, (), {}, lambda _texts: {"form": make_form()})


def page(template: str, variant: tuple, slots: dict, make_context) -> str:
    """A page with per-request `slots` from the cache (see `PageCache.render`); only when
    `enabled()`, the caller rendering the page itself otherwise."""
    return current_app.extensions["fastpaths"].render(template, variant, slots, make_context)


def init_app(app) -> None:
    """Give the app its page cache (used only while FAST_PATHS is on) and, while FAST_PATHS is
    on, the session interface that keeps its serializer (sessions.py)."""
    app.config.setdefault("FAST_PATHS", True)
    app.extensions["fastpaths"] = PageCache()
    if app.config["FAST_PATHS"]:
        from .sessions import CachedSessionInterface

        app.session_interface = CachedSessionInterface()

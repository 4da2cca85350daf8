"""Form pages rendered once per language and variant, with what is personal put in per request.

A blank form page (`GET /signup`) is the same for every visitor except for its CSRF token, and
the page that refuses a code differs between visitors only in a few strings (the address, the
message, the masked address) besides the token. Rendering them through Jinja macros and
WTForms widgets each time cost several times what serving them does. So the first request for
a page in a language (and variant) renders it with random placeholders where those strings
go, and every later one puts this request's values, HTML-escaped exactly as the template
would escape them, into that text. Anything else that makes a page personal (flashed
messages, a query string, a signed-in header) is rendered normally instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets

from flask import (current_app, g, has_request_context, render_template, request, session,
                   url_for)
from flask_babel import get_locale
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape

# Flask-WTF's salt for its tokens (flask_wtf.csrf.generate_csrf): tokens made here are checked
# by Flask-WTF's own validate_csrf, and a test holds the two together across upgrades.
CSRF_SALT = "wtf-csrf-token"


class PageCache:
    """Rendered pages, one cache per app: (template, path, language, variant) -> text."""

    def __init__(self):
        # Random per process, so no visitor can type it into a field and have it replaced.
        self.placeholder = f"placeholder-{secrets.token_hex(16)}"
        self.pages: dict[tuple, str] = {}
        self._serializer = (None, None)

    def csrf_token(self) -> str:
        """This request's CSRF token, as Flask-WTF's `generate_csrf()` makes it.

        The same steps with the signing serializer kept between requests: Flask-WTF builds a
        new one per call, which cost more than everything else this page does.
        """
        config = current_app.config
        field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        token = g.get(field)
        if token is not None:
            return token
        secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
        cached_secret, serializer = self._serializer
        if cached_secret != secret:
            serializer = URLSafeTimedSerializer(secret, salt=CSRF_SALT)
            self._serializer = (secret, serializer)
        if not isinstance(session.get(field), str):
            session[field] = hashlib.sha1(os.urandom(64)).hexdigest()
        token = serializer.dumps(session[field])
        setattr(g, field, token)
        return token

    @staticmethod
    def cacheable() -> bool:
        """Whether this request gets the same page as everyone else, but for the slots."""
        return (not request.query_string and "_flashes" not in session
                and not session.get("user_id") and not current_app.debug
                and not current_app.config.get("TEMPLATES_AUTO_RELOAD"))

    def blank(self, template: str, make_form) -> str:
        """A blank form page; `make_form()` builds the blank form."""
        if request.method != "GET" or not self.cacheable():
            return render_template(template, form=make_form())
        return self.render(template, (), {}, lambda _slots: {"form": make_form()})

    def render(self, template: str, variant: tuple, slots: dict, make_context) -> str:
        """The page for `variant` with `slots` (name -> text) and the CSRF token filled in.

        `make_context(texts)` builds the template's context with `texts[name]` wherever a slot's
        value belongs; `variant` must hold everything else the page depends on (a finite set of
        values, so the cache stays bounded).
        """
        key = (template, request.path, str(get_locale()), variant)
        page = self.pages.get(key)
        if page is None:
            texts = {name: f"{self.placeholder}-{name}-" for name in slots}
            page = self._render_with_placeholders(template, lambda: make_context(texts))
            self.pages[key] = page
        for name, value in slots.items():
            page = page.replace(f"{self.placeholder}-{name}-", escape(value))
        return page.replace(self.placeholder, self.csrf_token())

    def _render_with_placeholders(self, template, make_context) -> str:
        # Flask-WTF keeps the request's token in g and hands it to every csrf_token() call,
        # and a form takes its token when it is built: setting the placeholder first, and only
        # then building the context, makes every form and the language switcher use it.
        field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        saved = g.pop(field, None)
        setattr(g, field, self.placeholder)
        try:
            return render_template(template, **make_context())
        finally:
            g.pop(field, None)
            if saved is not None:
                setattr(g, field, saved)


def page_cache() -> PageCache:
    """This app's page cache."""
    return current_app.extensions["page_cache"]


def blank_page(template: str, make_form) -> str:
    """Render a blank form page through the app's cache (see the module's docstring)."""
    return page_cache().blank(template, make_form)


def template_url_for(endpoint: str, **values) -> str:
    """`url_for` for templates, remembering the URLs that never change.

    A page builds a dozen URLs (stylesheet, script, navigation, form actions) that depend only
    on the endpoint and where the app is mounted; each cost as much as a gettext did. URLs with
    values other than a static file's name (a link token, say) are built every time, so the
    memo is bounded by the app's endpoints and static files.
    """
    if not has_request_context() or (values and (endpoint != "static" or len(values) != 1
                                                  or "filename" not in values)):
        return url_for(endpoint, **values)
    memo = current_app.extensions["template_urls"]
    key = (request.script_root, endpoint, values.get("filename"))
    found = memo.get(key)
    if found is None:
        found = url_for(endpoint, **values)
        if len(memo) < 1024:  # the mount point comes from the server: a bound all the same
            memo[key] = found
    return found


def init_app(app) -> None:
    """Templates build their fixed URLs through the memo."""
    app.extensions["template_urls"] = {}
    app.extensions["page_cache"] = PageCache()
    app.jinja_env.globals["url_for"] = template_url_for

"""Language choice and translated text, cheap enough to run dozens of times per page.

Flask-Babel's template `_()` looks the request's translations up through several layers on
every call; a form page calls it twenty to thirty times. Here the lookup is made once per
request and language (a forced language, as for an email in the registration's language,
is noticed and looked up again), and the browser's language preference is worked out once
per distinct Accept-Language header.
"""

from __future__ import annotations

import functools

from babel import Locale
from flask import current_app, g, request, session
from flask_babel import get_locale, get_translations
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header


def select_locale() -> Locale:
    """The language chosen on the site, else the browser's preference among ours."""
    languages = tuple(current_app.config["LANGUAGES"])
    chosen = session.get("lang")
    if chosen in languages:
        return _locale(chosen)
    return _preferred_locale(request.headers.get("Accept-Language", ""), languages)


@functools.lru_cache(maxsize=1024)
def _preferred_locale(accept_language: str, languages: tuple) -> Locale:
    # Browsers send few distinct headers: the answer is kept per header (bounded).
    accept = parse_accept_header(accept_language, LanguageAccept)
    return _locale(accept.best_match(languages) or "en")


@functools.lru_cache(maxsize=None)
def _locale(code: str) -> Locale:
    # Only codes from LANGUAGES reach here, so the cache stays as small as that list.
    return Locale.parse(code)


def translations():
    """This request's translations for its current language (forced or chosen)."""
    # Flask-Babel keeps the request's language (and any forced one) in g._flask_babel.
    state = g.get("_flask_babel")
    locale = getattr(state, "babel_locale", None)
    memo = g.get("_translations_memo")
    if memo is not None and locale is not None and memo[0] is locale:
        return memo[1]
    found = get_translations()
    g._translations_memo = (get_locale(), found)
    return found


def install(app) -> None:
    """Give the templates' `_()` and `ngettext()` the once-per-request lookup."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
    )

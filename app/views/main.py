"""The landing page, the language switcher and helpers every template uses."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from ..forms import LanguageForm

bp = Blueprint("main", __name__)
LANGUAGE_NAMES = {"en": "English", "tr": "Türkçe"}


@bp.get("/")
def index():
    """Landing page with links to sign up and sign in."""
    return render_template("main/index.html")


def safe_next(target: str | None) -> str:
    """A path on this site to go back to; anything else (another host, //evil) becomes /."""
    # Control characters (CR/LF, tab) would either be stripped by urlsplit or break the
    # Location header: such a target is refused outright.
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)):
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("main.index")
    return target


@bp.post("/lang")
def set_language():
    """Remember the chosen language in the session and go back to the page it was chosen on.

    A POST with the CSRF token rather than a GET link: the page to go back to may be a
    verification link, whose token must not appear in a query string (and so in access logs).
    """
    form = LanguageForm()
    if form.validate_on_submit() and form.lang.data in current_app.config["LANGUAGES"]:
        session["lang"] = form.lang.data
    return redirect(safe_next(form.next.data), 303)


@bp.app_context_processor
def language_switcher():
    """The languages the header's switcher offers, each named in itself."""
    return {"language_names": LANGUAGE_NAMES}


@bp.app_template_global()
def first_error_id(form) -> str | None:
    """The id to focus when a form comes back with errors: its first invalid field or summary."""
    if form is None:
        return None
    for field in form:
        if field.errors and field.type not in ("CSRFTokenField", "HiddenField"):
            return field.id
    if form.errors or getattr(form, "form_errors", None):
        return "error-summary"
    return None


@bp.app_template_global()
def current_path() -> str:
    """The path of this page with its query, for the language switcher to come back to."""
    return request.full_path.rstrip("?") if request.query_string else request.path

"""The signup service: `create_app` builds the Flask application."""

from __future__ import annotations

import importlib
import logging

from flask import Flask

from . import fastpaths, files, i18n
from . import mail as mail_module
from . import models, pending
from .config import INSTANCE_PATH, PROJECT_ROOT, load_config
from .extensions import babel, csrf, db, mail
from .redaction import RedactingFilter
from .security import Passwords
from .version import __version__

__all__ = ["__version__", "create_app"]


def create_app(config: dict | None = None, *, environ=None) -> Flask:
    """Build the app; `config` overrides win over the environment and `.env`."""
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "static"), instance_path=str(INSTANCE_PATH),
                instance_relative_config=True)
    app.config.update(load_config(environ, config, instance_path=INSTANCE_PATH))
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_hooks(app)
    # After the hooks: the limiter's own hook then runs last before the view, as a limit on the
    # view would (a submission that is not text is refused before it counts).
    register_limits(app)
    return app


def configure_logging(app: Flask) -> None:
    """Log to stderr at INFO so the development email backend shows in the terminal."""
    root = logging.getLogger("app")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    if app.config.get("SECRET_KEY_GENERATED"):
        app.logger.warning("SECRET_KEY is not set: using a generated development key kept in "
                           "the instance folder")


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions and wire in the subsystems."""
    db.init_app(app)
    csrf.init_app(app)
    mail.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale)
    fastpaths.init_app(app)
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    app.extensions["passwords"] = Passwords(
        time_cost=app.config["ARGON2_TIME_COST"], memory_cost=app.config["ARGON2_MEMORY_COST"],
        parallelism=app.config["ARGON2_PARALLELISM"],
        min_length=app.config["PASSWORD_MIN_LENGTH"])
    files.private_sqlite(app.config["SQLALCHEMY_DATABASE_URI"])
    models.init_app(app)
    mail_module.init_app(app)
    pending.init_app(app, app.config.get("PENDING_MANAGER"))


def register_blueprints(app: Flask) -> None:
    """Register one blueprint per feature."""
    from .views import BLUEPRINT_MODULES

    for name in BLUEPRINT_MODULES:
        app.register_blueprint(importlib.import_module(f".views.{name}", __name__).bp)


def register_limits(app: Flask) -> None:
    """Per-client-IP rate limits on the form POSTs (Flask-Limiter's hook, after the others)."""
    from .limits import init_app

    init_app(app)


def register_errorhandlers(app: Flask) -> None:
    """Error pages for 400/404/405/413/429/500/503 and CSRF failures."""
    from .errors import init_app

    init_app(app)


def register_commands(app: Flask) -> None:
    """The `flask --app wsgi` commands."""
    from .cli import init_app

    init_app(app)


def register_hooks(app: Flask) -> None:
    """Submissions whose fields are not all text refused, signed-in session checks, security
    headers, request timing, and client IP and scheme from trusted proxies only."""
    from . import accounts
    from .forms import init_app as init_forms
    from .headers import init_app

    init_forms(app)
    accounts.init_app(app)
    init_app(app)
    from .metrics import init_app as init_metrics

    init_metrics(app)
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Never X-Forwarded-Host: nothing is built from the host (emailed links come from
        # APP_BASE_URL), and a header is not where the site's own name comes from.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)

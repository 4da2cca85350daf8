"""The landing page."""

from flask import Blueprint, render_template

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    """Landing page with links to sign up and sign in."""
    return render_template("main/index.html")

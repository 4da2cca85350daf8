"""Unbound extension objects, bound to the app in the factory."""

from flask_babel import Babel
from flask_mail import Mail
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for the models."""


# pool_pre_ping: a pooled connection the database dropped (restart, failover) is replaced before
# use, instead of failing the first request after the database is back (SPEC 7).
db = SQLAlchemy(model_class=Base, engine_options={"pool_pre_ping": True})
csrf = CSRFProtect()
mail = Mail()
babel = Babel()

"""Flask-WTF forms with their validators (field names are SPEC section 2's)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from .security import has_forbidden_characters, normalise_code

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100
MAX_PASSWORD_LENGTH = 128


def normalise_email(raw: str) -> str:
    """Validate an address and return it normalised (IDNA domain, lower-cased); raise otherwise.

    The local part must be ASCII (no SMTPUTF8), so every mail server can deliver it.
    """
    if not isinstance(raw, str) or has_forbidden_characters(raw):
        raise ValueError(_l("Enter a valid email address, like name@example.com."))
    try:
        info = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise ValueError(_l("Enter a valid email address, like name@example.com.")) from None
    email = info.ascii_email.lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(_l("That address is too long (at most 254 characters)."))
    return email


class EmailField(StringField):
    """A text field whose `data` becomes the normalised address once validated."""

    def pre_validate(self, form):
        if not self.data:
            raise ValidationError(_l("Enter your email address."))
        try:
            self.normalised = normalise_email(self.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class SignupForm(FlaskForm):
    """email, password, confirm, optional name."""

    email = EmailField(_l("Email address"))
    password = PasswordField(_l("Password"), validators=[
        DataRequired(_l("Choose a password.")),
        Length(max=MAX_PASSWORD_LENGTH, message=_l("Use at most 128 characters."))])
    confirm = PasswordField(_l("Repeat the password"), validators=[
        DataRequired(_l("Type the password again.")),
        EqualTo("password", message=_l("The two passwords are not the same."))])
    name = StringField(_l("Name (optional)"), validators=[
        Optional(), Length(max=MAX_NAME_LENGTH, message=_l("Use at most 100 characters."))])

    def validate_name(self, field):
        """No control, format or line-separator characters in a name."""
        if field.data and has_forbidden_characters(field.data):
            raise ValidationError(_l("The name has characters we can't store."))

    def validate_password(self, field):
        """Length, common-password and same-as-email checks (no composition rules)."""
        email = getattr(self.email, "normalised", "")
        problems = current_app.extensions["passwords"].problems(field.data or "", email)
        if problems:
            raise ValidationError(problems[0])


class VerifyForm(FlaskForm):
    """email, code, and password when this browser is not the one that signed up."""

    email = EmailField(_l("Email address"))
    code = StringField(_l("Verification code"))
    password = PasswordField(_l("Password chosen at signup"), validators=[
        Optional(), Length(max=MAX_PASSWORD_LENGTH)])

    def validate_code(self, field):
        """Exactly 6 ASCII digits once spaces and dashes are removed."""
        code = normalise_code(field.data or "")
        if code is None:
            raise ValidationError(_l("Enter the 6-digit code from the email."))
        self.normalised_code = code


class LinkForm(FlaskForm):
    """The confirm button of the emailed link, with the password for another browser."""

    password = PasswordField(_l("Password chosen at signup"), validators=[
        Optional(), Length(max=MAX_PASSWORD_LENGTH)])


class ResendForm(FlaskForm):
    """email."""

    email = EmailField(_l("Email address"))


class LoginForm(FlaskForm):
    """email, password."""

    email = EmailField(_l("Email address"))
    password = PasswordField(_l("Password"), validators=[
        DataRequired(_l("Enter your password.")), Length(max=MAX_PASSWORD_LENGTH)])


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""

"""Flask-WTF forms with their validators (field names are SPEC section 2's)."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from flask import current_app, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.form import SUBMIT_METHODS
from werkzeug.exceptions import BadRequest
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import (DataRequired, EqualTo, Length, Optional, StopValidation,
                                ValidationError)

from .security import has_control_characters, has_forbidden_characters, normalise_code

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100
MAX_PASSWORD_LENGTH = 128


# A lone surrogate: JSON can carry one ("\\ud800"), but it is no character and cannot be
# encoded to store, hash or mail, so a field holding one is not text.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class NotFormText(BadRequest):
    """A submitted body whose fields are not all text: a file part, or JSON that is not an
    object of strings."""


def is_text(value) -> bool:
    """True for a string that is Unicode text (what a form field typed into a page holds)."""
    return isinstance(value, str) and LONE_SURROGATE.search(value) is None


def refuse_fields_that_are_not_text() -> None:
    """Refuse a submitted body unless every field in it is text; runs before every view.

    Flask-WTF fills forms from `request.files` as well as `request.form`, and from
    `request.get_json()` when the body is JSON (with the CSRF token in a header): a file part,
    a number, a list or a JSON body that is not an object reached the fields and validators,
    which expect strings. One check here covers every form on every route, before a view or
    its rate limit runs. A JSON object of strings is still accepted, as Flask-WTF documents.
    """
    if request.method not in SUBMIT_METHODS or request.url_rule is None:
        return  # not a submission, or no route (404/405 pages answer it)
    if request.files:
        raise NotFormText()
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(map(is_text, body.values())):
            raise NotFormText()


def init_app(app) -> None:
    """Check every submission's fields before its view sees them."""
    app.before_request(refuse_fields_that_are_not_text)


class NoControlCharacters:
    """Refuse a password holding control characters (Unicode category Cc).

    NUL, tabs, line breaks, DEL and the C1 controls cannot be typed into a password input, and
    NUL in particular is cut short by C libraries and drivers. Format characters (Cf) are
    allowed: a zero-width joiner is part of many emoji and a zero-width non-joiner is needed
    to spell Persian or Hindi words, and a password is only ever hashed, never shown.
    Put first, so an all-whitespace value of controls is not taken for an empty field.
    """

    def __call__(self, form, field):
        if isinstance(field.data, str) and has_control_characters(field.data):
            raise StopValidation(_l("A password can't contain control characters (such as "
                                    "NUL, a tab or a line break)."))


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
        """Required, valid, and normalised into `self.normalised`."""
        if not self.data:
            raise ValidationError(_l("Enter your email address."))
        try:
            self.normalised = normalise_email(self.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def password_problem_message(problem: str, min_length: int) -> str:
    """The person's-language text for one of `Passwords.problems()`' reasons."""
    if problem.startswith("Use at least"):
        return _("Use at least %(n)d characters.", n=min_length)
    if problem.startswith("Use at most"):
        return _("Use at most 128 characters.")
    if "email address" in problem:
        return _("Don't use your email address as your password.")
    if "too common" in problem:
        return _("This password is too common: it is on lists that attackers try first.")
    return problem


def new_password_validators():
    """Required and at most 128 characters: a new password's field checks (signup, change)."""
    return [NoControlCharacters(), DataRequired(_l("Choose a password.")),
            Length(max=MAX_PASSWORD_LENGTH, message=_l("Use at most 128 characters."))]


def confirm_validators():
    """Required and equal to the `password` field."""
    return [NoControlCharacters(), DataRequired(_l("Type the password again.")),
            EqualTo("password", message=_l("The two passwords are not the same."))]


def check_new_password(password: str | None, email: str) -> None:
    """Length, common-password and same-as-email checks (no composition rules); raise if bad."""
    rules = current_app.extensions["passwords"]
    problems = rules.problems(password or "", email)
    if problems:
        # The rules live in security.py in English; the person reads them in their language.
        raise ValidationError(password_problem_message(problems[0], rules.min_length))


def new_password_fields():
    """A new password and its repetition (fields keep the order they are made in, so each form
    makes its own where they belong)."""
    return (PasswordField(_l("New password"), validators=new_password_validators()),
            PasswordField(_l("Repeat the new password"), validators=confirm_validators()))


class SignupForm(FlaskForm):
    """email, password, confirm, optional name; `typed_email` confirms an address kept as typed."""

    email = EmailField(_l("Email address"))
    # The view sets `keep_value` on both for the typo question: the template then writes
    # the typed passwords back into the page (templates/_macros.html, `field`).
    password = PasswordField(_l("Password"), validators=new_password_validators())
    confirm = PasswordField(_l("Repeat the password"), validators=confirm_validators())
    name = StringField(_l("Name (optional)"), validators=[
        Optional(), Length(max=MAX_NAME_LENGTH, message=_l("Use at most 100 characters."))])
    # Set on the typo question: the address the person was asked about. Submitting it again
    # unchanged means "keep what I typed", so the question is not asked twice.
    typed_email = HiddenField()

    def validate_name(self, field):
        """No control, format or line-separator characters in a name."""
        if field.data and has_forbidden_characters(field.data):
            raise ValidationError(_l("The name has characters we can't store."))

    def validate_password(self, field):
        """The rules for a new password, against the address typed."""
        check_new_password(field.data, getattr(self.email, "normalised", ""))


class VerifyForm(FlaskForm):
    """email, code, and password when this browser is not the one that signed up."""

    email = EmailField(_l("Email address"))
    code = StringField(_l("Verification code"))
    password = PasswordField(_l("Password chosen at signup"), validators=[
        NoControlCharacters(), Optional(),
        Length(max=MAX_PASSWORD_LENGTH, message=_l("Use at most 128 characters."))])

    def validate_code(self, field):
        """Exactly 6 ASCII digits once spaces and dashes are removed."""
        code = normalise_code(field.data or "")
        if code is None:
            raise ValidationError(_l("Enter the 6-digit code from the email."))
        self.normalised_code = code


class LinkForm(FlaskForm):
    """The confirm button of the emailed link, with the password for another browser."""

    password = PasswordField(_l("Password chosen at signup"), validators=[
        NoControlCharacters(), Optional(),
        Length(max=MAX_PASSWORD_LENGTH, message=_l("Use at most 128 characters."))])


class ResendForm(FlaskForm):
    """email."""

    email = EmailField(_l("Email address"))


class LoginForm(FlaskForm):
    """email, password."""

    email = EmailField(_l("Email address"))
    password = PasswordField(_l("Password"), validators=[
        NoControlCharacters(), DataRequired(_l("Enter your password.")),
        Length(max=MAX_PASSWORD_LENGTH, message=_l("Use at most 128 characters."))])


class ForgotForm(FlaskForm):
    """email: where to send help with a forgotten password."""

    email = EmailField(_l("Email address"))


class ResetForm(FlaskForm):
    """email, code, password, confirm: a new password with the emailed reset code."""

    email = EmailField(_l("Email address"))
    code = StringField(_l("Code from the email"))
    password, confirm = new_password_fields()
    validate_code = VerifyForm.validate_code

    def validate_password(self, field):
        """The signup rules (SPEC section 3)."""
        check_new_password(field.data, getattr(self.email, "normalised", ""))


class ResetLinkForm(FlaskForm):
    """password, confirm: a new password on the emailed reset link's page.

    The view sets `account_email` (from the reset) for the "not your email address" rule.
    """

    password, confirm = new_password_fields()
    account_email = ""

    def validate_password(self, field):
        """The signup rules (SPEC section 3)."""
        check_new_password(field.data, self.account_email)


def current_password_field(label, element_id: str):
    """The signed-in person's password, asked again before a change (`id` unique on /account)."""
    return PasswordField(label, id=element_id, validators=[
        NoControlCharacters(), DataRequired(_l("Enter your current password.")),
        Length(max=MAX_PASSWORD_LENGTH, message=_l("Use at most 128 characters."))])


class ChangePasswordForm(FlaskForm):
    """current_password, password, confirm (on /account, beside the delete form)."""

    current_password = current_password_field(_l("Current password"), "current_password")
    password = PasswordField(_l("New password"), id="new_password",
                             validators=new_password_validators())
    confirm = PasswordField(_l("Repeat the new password"), id="new_confirm",
                            validators=confirm_validators())

    def __init__(self, *args, owner_email: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.owner_email = owner_email

    def validate_password(self, field):
        """The signup rules for a new password, against the account's address."""
        check_new_password(field.data, self.owner_email)


class DeleteAccountForm(FlaskForm):
    """password, to confirm that the signed-in person means it."""

    password = current_password_field(_l("Your password"), "delete_password")


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""


class LanguageForm(FlaskForm):
    """The language switcher: the chosen language and the page to go back to."""

    lang = StringField()
    next = HiddenField()

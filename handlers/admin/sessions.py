"""Admin sessions: the signing key, a signed cookie holding a keyed fingerprint of the token."""

import hashlib
import hmac
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from flask import current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from .. import auth

SECRET_KEY_FILE = "admin_secret_key"
FINGERPRINT = "token_fingerprint"
SIGNED_IN_AT = "signed_in_at"
EXPIRED, REVOKED = "expired", "revoked"


def init_app(app, settings):
    """Set the key that signs sessions and the cookie's attributes and lifetime."""
    if settings.admin_secret_key:
        key = settings.admin_secret_key
    elif settings.is_postgres:
        # Hosts sharing a PostgreSQL store must share the key, so none may invent its own.
        raise SystemExit(
            "configuration error: admin.secret_key: missing; a PostgreSQL deployment needs the"
            " same key on every host: set admin.secret_key or ADMIN_SECRET_KEY"
        )
    else:
        key = instance_secret_key(app.instance_path)
    app.secret_key = key
    app.session_interface = SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="adapter_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.admin_session_hours),
    )


def instance_secret_key(instance_path):
    """Return the key kept in the instance folder, creating it once (workers may race)."""
    path = Path(instance_path) / SECRET_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{SECRET_KEY_FILE}.{secrets.token_hex(8)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
        try:
            # A link never replaces: the first worker's key wins and every other one reads it.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


class SessionInterface(SecureCookieSessionInterface):
    """Mark the cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app):
        return request.is_secure or super().get_cookie_secure(app)


def fingerprint(token):
    """Return a keyed fingerprint of a token: it names the token without revealing it."""
    key = hmac.new(current_app.secret_key.encode(), b"admin token fingerprint", hashlib.sha256)
    return hmac.new(key.digest(), token.encode(), hashlib.sha256).hexdigest()


def sign_in(token):
    """Open a session for a configured token."""
    session.clear()
    session.permanent = True
    session[FINGERPRINT] = fingerprint(token)
    session[SIGNED_IN_AT] = int(time.time())


def sign_out():
    """End the session."""
    session.clear()


def check():
    """Return None for a valid session, else why there is none ("", EXPIRED or REVOKED)."""
    held = session.get(FINGERPRINT)
    if not isinstance(held, str):
        return ""
    settings = current_app.extensions["adapter_settings"]
    signed_in_at = session.get(SIGNED_IN_AT)
    if not isinstance(signed_in_at, int) or (
        time.time() - signed_in_at >= settings.admin_session_hours * 3600
    ):
        session.clear()
        return EXPIRED
    signed_in_with = None
    for token in settings.api_tokens:
        if hmac.compare_digest(held, fingerprint(token)):
            signed_in_with = token
    if signed_in_with is None:
        # The token was removed from the configuration: its sessions end with it.
        session.clear()
        return REVOKED
    # What this session does is recorded under the token's name, as on the API.
    auth.act_as(auth.token_name(signed_in_with))
    return None

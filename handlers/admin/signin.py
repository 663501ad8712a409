"""Signing in with a merchant API token, signing out, and choosing the language."""

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import auth
from . import i18n, sessions
from .blueprint import bp
from .throttle import FailedSignIns

failed_sign_ins = FailedSignIns()
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


def safe_next(target):
    """Return `target` if it is a page of the admin, else the orders list (no open redirect)."""
    if isinstance(target, str) and target.startswith("/admin/") and "\\" not in target and (
        not target.startswith("//")
    ):
        return target
    return url_for("admin.orders")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; sign in with a configured merchant API token."""
    next_page = safe_next(request.values.get("next"))
    if request.method == "GET":
        if sessions.check() is None:
            return redirect(next_page)
        return render_template("admin/login.html", next=next_page)
    client = request.remote_addr or "unknown"
    wait = failed_sign_ins.wait_seconds(client)
    if wait:
        error = _("Too many failed sign-ins. Try again in %(seconds)s seconds.", seconds=wait)
        response = make_response(render_template("admin/login.html", next=next_page, error=error), 429)
        response.headers["Retry-After"] = str(wait)
        return response
    token = request.form.get("token", "").strip()
    if not token:
        error = _("Enter a merchant API token.")
        return render_template("admin/login.html", next=next_page, error=error), 422
    if auth.matching_token(token) is None:
        # The same words for every refused token: the page never tells whether one exists.
        failed_sign_ins.record_failure(client)
        error = _("This token does not sign you in.")
        return render_template("admin/login.html", next=next_page, error=error), 403
    sessions.sign_in(token)
    return redirect(next_page)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Ask to sign out (GET), or end the session (POST)."""
    if request.method == "GET":
        return render_template("admin/logout.html")
    sessions.sign_out()
    flash(_("You have signed out."), "notice")
    return redirect(url_for("admin.login"))


@bp.get("/language/<code>")
def language(code):
    """Remember the chosen language in a cookie and go back to the page."""
    response = redirect(safe_next(request.args.get("next")))
    if code in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANGUAGE_COOKIE, code, max_age=LANGUAGE_COOKIE_SECONDS, path="/admin",
            secure=request.is_secure, httponly=True, samesite="Lax",
        )
    return response

"""The admin blueprint: every page needs a session, every form POST its CSRF token."""

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect

from adapter.errors import AdapterError

from . import sessions

bp = Blueprint(
    "admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static"
)
csrf = CSRFProtect()

# Pages open without a session: signing in, choosing a language, the stylesheet and script.
PUBLIC_ENDPOINTS = {"admin.login", "admin.language", "admin.static"}


@bp.before_request
def require_session():
    """Send a request without a valid session to the sign-in page; check a form's CSRF token."""
    if request.endpoint not in PUBLIC_ENDPOINTS:
        ended = sessions.check()
        if ended is not None:
            if ended:
                flash(_("Your session has ended. Sign in again."), "notice")
            if request.headers.get("HX-Request"):
                # A poll of an open page: htmx swaps nothing on a 401 and opens the sign-in page.
                response = make_response("", 401)
                response.headers["HX-Redirect"] = url_for("admin.login", next=_page_of(request))
                return response
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        csrf.protect()
    return None


def _page_of(poll):
    """Return the page a poll came from, when it is an admin page (else the orders list)."""
    page = poll.headers.get("HX-Current-URL", "")
    path = page.split("//", 1)[-1].partition("/")[2]
    return "/" + path if path.startswith("admin/") else url_for("admin.orders")


@bp.context_processor
def page_context():
    """Give every page its language and whether someone is signed in."""
    return {"language": str(get_locale()), "signed_in": sessions.check() is None}


@bp.errorhandler(CSRFError)
def refuse_without_csrf_token(error):
    """Answer a form without its CSRF token with a 400 page; nothing was changed."""
    return render_template(
        "admin/error.html",
        title=_("Form refused"),
        message=_("The form expired or came from another site. Reload the page and try again."),
    ), 400


@bp.errorhandler(AdapterError)
def adapter_error(error):
    """Show a refusal of the core (such as an unknown order) as a page with its status."""
    if error.status == 404:
        title, message = _("Not found"), _("There is nothing at this address.")
    else:
        title, message = _("Request refused"), _("This request cannot be carried out.")
    return render_template("admin/error.html", title=title, message=message), error.status

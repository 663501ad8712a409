"""Safety headers on every admin response."""

from flask import request

# Scripts and styles come only from the app's own static files: templates hold none inline.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Tracking links lead to carriers' sites: they learn nothing of the admin's addresses.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def add_headers(response):
    """Add the safety headers to a response under /admin/; pages are never cached."""
    if request.path == "/admin" or request.path.startswith("/admin/"):
        response.headers.update(HEADERS)
        if not request.path.startswith("/admin/static/"):
            response.headers["Cache-Control"] = "no-store"
    return response

"""The settings the core runs with, given once by the app or by a test."""

_current = None


def configure(settings):
    """Make `settings` (a `config.Settings`) the ones the core reads."""
    global _current
    _current = settings


def current():
    """Return the configured settings."""
    if _current is None:
        raise RuntimeError("adapter.settings.configure() has not been called")
    return _current


def service(key):
    """Return the configuration of service `key`, or None if there is no such service."""
    return current().services.get(key)

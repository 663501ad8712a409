"""Languages of the pages (Thai and English), and money and dates as people read them."""

import functools
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.numbers import parse_pattern
from flask import current_app, g, request
from flask_babel import Babel, get_locale, get_translations
from markupsafe import Markup

LANGUAGES = ("en", "th")
LANGUAGE_COOKIE = "adapter_admin_language"
TRANSLATIONS = Path(__file__).with_name("translations")
BUDDHIST_ERA_OFFSET = 543


def init_app(app, settings):
    """Choose each request's language and give templates the formatting filters."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    Babel(app, locale_selector=chosen_language)
    # Templates say `_("...")` hundreds of times a page: each string is looked up once a request.
    app.jinja_env.install_gettext_callables(
        gettext=translated,
        ngettext=lambda s, p, n: get_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: get_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: get_translations().unpgettext(c, s, p, n),
    )
    # jinja's `_` reaches the newstyle gettext through three context calls; a large order page
    # says `_()` about 300 times, so `_` does the same (translate, mark safe, escape the
    # variables in) in one.
    app.jinja_env.globals["_"] = page_text
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["moment"] = format_moment


def translated(string):
    """Return `string` in the request's language, looked up once per request."""
    said = g.setdefault("translated", {})
    if string not in said:
        said[string] = get_translations().ugettext(string)
    return said[string]


def page_text(string, **variables):
    """Return `_(string, **variables)` of a template: translated, safe, its variables escaped."""
    return Markup(translated(string)) % variables


def chosen_language():
    """Return the language from the switch's cookie, else the best for `Accept-Language`."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="en")


def format_money(amount, currency):
    """Return an amount (a decimal string) with its currency, its decimals kept as given."""
    if amount is None:
        return ""
    _, _, decimals = amount.partition(".")
    number = _number_pattern(len(decimals)).apply(Decimal(amount), get_locale())
    return f"{number} {currency}"


@functools.cache
def _number_pattern(decimals):
    """The grouped pattern with `decimals` places, parsed once (a list page shows 50 amounts)."""
    return parse_pattern("#,##0" + ("." + "0" * decimals if decimals else ""))


def _moment_context():
    """The admin time zone and the page's locale, looked up once per request."""
    context = g.get("moment_context")
    if context is None:
        zone = ZoneInfo(current_app.extensions["adapter_settings"].admin_timezone)
        context = g.moment_context = (zone, get_locale())
    return context


def format_moment(value):
    """Return a time in the configured zone with the zone shown; Thai years are Buddhist era."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone_info, locale = _moment_context()
    local = moment.astimezone(zone_info)
    offset = local.utcoffset()
    zone = "UTC" if not offset else "UTC" + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]
    month = locale.months["format"]["abbreviated"][local.month]
    if locale.language == "th":
        return f"{local.day} {month} {local.year + BUDDHIST_ERA_OFFSET} {local:%H:%M} {zone}"
    return f"{local.day} {month} {local.year}, {local:%H:%M} {zone}"

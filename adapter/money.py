"""Amounts: decimal strings in and out, integers of the currency's minor unit in the store.

The stated range: every amount given and every sum stored (a line's total, an order's total)
has at most `MAX_INTEGER_DIGITS` digits in the currency's major unit, so at most
9999999999999.99 in USD, 9999999999999 in JPY, 9999999999999.999 in KWD. The largest sum that
can then be stored (under 10**16 minor units) fits a 64-bit column on both stores.
"""

from decimal import Decimal, InvalidOperation

from .errors import ValidationFailed

ZERO_DECIMAL_CURRENCIES = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW"]
    + ["PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)
THREE_DECIMAL_CURRENCIES = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])
MAX_INTEGER_DIGITS = 13


def decimals_of(currency):
    """Return how many decimal places amounts in `currency` have."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def max_minor(currency):
    """Return the largest amount, in minor units, that `currency` may hold anywhere."""
    return 10 ** (MAX_INTEGER_DIGITS + decimals_of(currency)) - 1


def parse_amount(text, currency):
    """Turn a decimal string into minor units; raise ValueError with a client-facing reason."""
    if not isinstance(text, str):
        raise ValueError("Must be a decimal string such as \"12.50\".")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("Must be a decimal string such as \"12.50\".") from None
    if not value.is_finite():
        raise ValueError("Must be a finite amount.")
    if value < 0:
        raise ValueError("Must not be negative.")
    places = decimals_of(currency)
    if value.adjusted() > 20:
        raise ValueError(_too_large(currency))
    minor = value.scaleb(places)
    if minor != minor.to_integral_value():
        raise ValueError(f"Has more than {places} decimal places for {currency}.")
    if minor > max_minor(currency):
        raise ValueError(_too_large(currency))
    return int(minor)


def checked_total(lines, currency):
    """Return the total of `(field, price_minor, quantity)` lines; refuse a line or a total out of range.

    The 422 names the field of the line whose total is too large, or of the line that takes the
    running total over. Lines without a field (those the request leaves as they are) count first,
    so the field named is always one the request gave.
    """
    limit = max_minor(currency)
    total = 0
    for field, price, quantity in sorted(lines, key=lambda line: line[0] is not None):
        line_total = price * quantity
        total += line_total
        if line_total > limit:
            reason = f"The line total (price × quantity) would exceed {format_amount(limit, currency)}."
        elif total > limit:
            reason = f"The order total would exceed {format_amount(limit, currency)}."
        else:
            continue
        raise ValidationFailed({field or "line_items": [reason]})
    return total


def format_amount(minor, currency):
    """Turn minor units back into a decimal string with the currency's places."""
    places = decimals_of(currency)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))


def _too_large(currency):
    return f"Must not exceed {format_amount(max_minor(currency), currency)}."

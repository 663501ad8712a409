"""Amounts: decimal strings in and out, integers of the currency's minor unit in the store."""

from decimal import Decimal, InvalidOperation

ZERO_DECIMAL_CURRENCIES = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW"]
    + ["PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)
THREE_DECIMAL_CURRENCIES = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])
MAX_MINOR = 10**15


def decimals_of(currency):
    """Return how many decimal places amounts in `currency` have."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


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
        raise ValueError("Is too large.")
    minor = value.scaleb(places)
    if minor != minor.to_integral_value():
        raise ValueError(f"Has more than {places} decimal places for {currency}.")
    if minor >= MAX_MINOR:
        raise ValueError("Is too large.")
    return int(minor)


def format_amount(minor, currency):
    """Turn minor units back into a decimal string with the currency's places."""
    places = decimals_of(currency)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))

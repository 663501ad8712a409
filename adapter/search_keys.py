"""Search keys: how `GET /orders?q=` compares what is typed with what is stored.

An email is stored as given and found whatever its case: its key is the lower-cased address.
A phone is found whatever its formatting: its key is its digits (Thai digits read as 0-9), so
`081-234 5678`, `(081) 2345678` and `๐๘๑๒๓๔๕๖๗๘` are one number; a country code is a digit
like any other (`+66 81…` is not `081…`).
"""

import unicodedata


def email_key(email):
    """Return the key an email is searched by, or None."""
    return email.lower() if email else None


def phone_key(text):
    """Return the digits of a phone number as ASCII, or None when it has none."""
    digits = "".join(str(unicodedata.decimal(char)) for char in text or "" if char.isdecimal())
    return digits or None


def phone_key_of_address(address):
    """Return the key of a shipping address's phone, or None."""
    phone = address.get("phone") if isinstance(address, dict) else None
    return phone_key(phone) if isinstance(phone, str) else None

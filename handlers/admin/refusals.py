"""A refused form: the core's reasons put next to the inputs (422) or in a banner (409)."""

import re
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

from adapter.errors import InvalidTransition, OrderLocked, OverFulfillment, ValidationFailed

# The core refusals a form can meet; anything else is the error handler's.
REFUSED = (ValidationFailed, InvalidTransition, OrderLocked, OverFulfillment)

CONFLICTS = {
    InvalidTransition: _l("This action is not possible now: the fulfillment order changed since the"
                          " page was drawn. The page shows it as it is now; nothing was changed."),
    OrderLocked: _l("The order cannot change while one of its fulfillment orders is in progress."
                    " Nothing was changed."),
    OverFulfillment: _l("More items than remain to be fulfilled. Nothing was changed."),
}
CHECK_FIELDS = _l("The form was not sent: check the fields marked below. Nothing was changed.")
CHECK_FORM = _l("The form was not sent: a value was not accepted. Nothing was changed.")

# The words next to an input say what it takes; the API's English reasons stay in the API.
FIELD_HINTS = {
    "message": _l("A note can have at most 5,000 characters."),
    "note": _l("A note can have at most 5,000 characters."),
    "reason": _l("Choose a reason."),
    "tracking_number": _l("Enter a tracking number of at most 255 characters, or leave it empty."),
    "tracking_company": _l("Enter a carrier of at most 255 characters, or leave it empty."),
    "tracking_url": _l("Enter a web address that starts with http:// or https://, or leave it empty."),
    "lines": _l("Choose at least one item: give a quantity above 0."),
    "quantity": _l("Enter a whole number from 0 to the quantity remaining."),
}
REQUIRED_MESSAGE = _l("Write a message of at most 5,000 characters.")
FIELD_OF_KEY = {
    "message": "message",
    "note": "note",
    "reason": "reason",
    "tracking": "tracking_number",
    "tracking.number": "tracking_number",
    "tracking.company": "tracking_company",
    "tracking.url": "tracking_url",
    "line_items": "lines",
}
LINE_KEY = re.compile(r"^line_items\.(\d+)(\..*)?$")


@dataclass
class Refusal:
    """What the page shows after a refused form; the rest of the page is drawn as it is now."""

    status: int
    fo_id: int
    action: str
    banner: object
    values: dict
    errors: dict = field(default_factory=dict)

    @classmethod
    def of(cls, error, fo_id, action, line_order, form):
        """Describe `error`; `line_order[N]` is the FO line the body's `line_items.N` came from."""
        values = {name: form.get(name) for name in form if name != "csrf_token"}
        if not isinstance(error, ValidationFailed):
            return cls(error.status, fo_id, action, CONFLICTS[type(error)], values)
        errors = {}
        for key in error.errors:
            name = input_of(key, line_order)
            if name is None:
                return cls(error.status, fo_id, action, CHECK_FORM, values)
            if name == "message" and action == "send_message":
                errors[name] = REQUIRED_MESSAGE
            else:
                errors[name] = FIELD_HINTS["quantity" if name.startswith("quantity-") else name]
        return cls(error.status, fo_id, action, CHECK_FIELDS, values, errors)

    def concerns(self, fo_id, action):
        """Tell whether this refusal belongs to the form of `action` on FO `fo_id`."""
        return self.fo_id == fo_id and self.action == action


def input_of(key, line_order):
    """Return the form input an API error key names (`line_items.0.quantity` -> `quantity-<id>`)."""
    if key in FIELD_OF_KEY:
        return FIELD_OF_KEY[key]
    matched = LINE_KEY.match(key)
    if matched and int(matched.group(1)) < len(line_order):
        return f"quantity-{line_order[int(matched.group(1))]}"
    return None

"""Errors the adapter answers with: each carries its HTTP status and stable code."""


class AdapterError(Exception):
    """Base of every error a client can cause or must know about."""

    status = 500
    code = "internal_error"
    title = "Internal server error"

    def __init__(self, detail=None, **extra):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class Unauthorized(AdapterError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class SignatureInvalid(AdapterError):
    status, code, title = 401, "signature_invalid", "Signature invalid"


class NotFound(AdapterError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(AdapterError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class MalformedJSON(AdapterError):
    status, code, title = 400, "malformed_json", "Malformed JSON"


class PayloadTooLarge(AdapterError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AdapterError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class ValidationFailed(AdapterError):
    """422 with the offending fields: `errors` maps a field to its messages."""

    status, code, title = 422, "validation_failed", "Validation failed"

    def __init__(self, errors, detail=None):
        super().__init__(detail or "The request has invalid fields.")
        self.errors = errors


class IdempotencyConflict(AdapterError):
    status, code, title = 422, "idempotency_conflict", "Idempotency conflict"


class InvalidTransition(AdapterError):
    """409: the action is not allowed in the current state."""

    status, code, title = 409, "invalid_transition", "Invalid transition"


class OrderLocked(AdapterError):
    status, code, title = 409, "order_locked", "Order locked"


class OverFulfillment(AdapterError):
    status, code, title = 409, "over_fulfillment", "Over-fulfillment"


class StoreUnavailable(AdapterError):
    """503: the database is locked or unreachable; the caller should retry later."""

    status, code, title = 503, "store_unavailable", "Store unavailable"

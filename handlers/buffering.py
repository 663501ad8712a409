"""Read a request's whole body before the app sees the request."""

import io

# Bodies up to this size are read before the app runs; larger ones (refused by the endpoints
# that have a limit) are left to stream.
BUFFER_LIMIT_BYTES = 1024 * 1024


class BufferedBody:
    """WSGI middleware: the app sees a request only once its body has arrived.

    Under gunicorn's gevent workers the app runs as soon as the headers are in; a client that
    stalls mid-body would then hold whatever the request took first (a pooled PostgreSQL
    connection, a writer's turn). Waiting here costs only the connection's greenlet.
    """

    def __init__(self, app, limit=BUFFER_LIMIT_BYTES):
        self.app = app
        self.limit = limit

    def __call__(self, environ, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit() and 0 < int(length) <= self.limit:
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))
        return self.app(environ, start_response)

"""Gunicorn settings, read from the working directory: each worker starts its outbox dispatcher."""

# Gunicorn 27 opens one control socket per user by default, shared by every instance on
# the host; this application does not use it.
control_socket_disable = True


def post_worker_init(worker):
    """Start the in-app dispatcher as soon as the worker has loaded the app, not at its first request."""
    from adapter import dispatcher

    dispatcher.ensure_started(worker.wsgi.extensions["adapter_settings"])

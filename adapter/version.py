"""The installed package's version, as the User-Agent and the OpenAPI document give it."""

import importlib.metadata


def _installed_version():
    try:
        return importlib.metadata.version("fulfillment-adapter")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


VERSION = _installed_version()

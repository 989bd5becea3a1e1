"""Adaptations of moto's server (adaptations.moto_server), against moto's original."""

from __future__ import annotations

from tests.aws_resources import REGION
from tests.local.moto_support import original


def test_server_dispatch_cache() -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    listing = original(backends, "list_of_moto_modules")
    assert not isinstance(listing(), tuple | list), "moto now lists its services once itself"
    assert tuple(listing()) == backends.list_of_moto_modules()

    app = DomainDispatcherApplication(create_backend_app)
    pristine = original(DomainDispatcherApplication, "get_backend_for_host")
    host = f"dynamodb.{REGION}.amazonaws.com"
    assert app.get_backend_for_host(host) == pristine(app, host) == "dynamodb"
    assert app.get_backend_for_host(host) == "dynamodb"  # from the cache now
    assert app.get_backend_for_host(None) is None

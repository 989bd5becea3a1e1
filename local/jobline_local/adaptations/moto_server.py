"""Adaptations of moto's server (the local stack runs moto in server mode)."""

from __future__ import annotations

from typing import Any

from jobline_local.adaptations.patching import replace


def adapt_server_dispatch_cache() -> None:
    """moto 5.2.5's server finds the backend of every request under one global lock, listing
    moto's package directory (a stat per service, ~200) and trying every URL pattern each time:
    requests queue behind it. The answer for a host never changes: remember it."""
    import threading

    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = tuple(backends.list_of_moto_modules())
    replace(backends, "list_of_moto_modules", lambda: modules)

    original = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}
    lock = threading.Lock()

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        with lock:
            if host in found:
                return found[host]
        backend = original(self, host)
        if backend is not None:
            with lock:
                found[host] = backend
        return backend

    replace(DomainDispatcherApplication, "get_backend_for_host", get_backend_for_host)

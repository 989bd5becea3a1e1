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


def adapt_serializer_key_picks() -> None:
    """moto 5.2.5 serializes a response by finding each model member's value in its Python object:
    for every value it builds six alias providers and asks each (the member's shape name, the key
    itself, the key without its structure's or class's prefix, the model's serialization name, and
    each of those in snake_case) before it reads one. Which keys it tries depends only on the picker,
    the service, the object's type, the key and the member's shape (its name, type, serialization
    name and the structure it belongs to), never on the value: the keys are worked out once per
    such combination and then read in moto's order (a stream's GetRecords spent nine tenths of its
    time there). An object with a `Meta` (explicit aliases, which may differ per object) is picked
    by moto as before. Responses are unchanged."""
    from moto.core.serialize import AttributePicker
    from moto.core.utils import MISSING, get_value

    original = AttributePicker.__call__
    tried: dict[tuple[Any, ...], tuple[tuple[str, ...], bool]] = {}

    def pick(self: Any, context: Any) -> Any:
        obj, shape = context.obj, context.shape
        if hasattr(obj, "Meta"):
            return original(self, context)
        parent = getattr(shape, "parent", None)
        combination = (
            type(self),
            tuple(self.alias_providers),
            getattr(context.service_model, "service_name", None),
            type(obj),
            context.key,
            None if shape is None else (shape.name, shape.type_name, shape.serialization.get("name")),
            None if parent is None else (parent.name, parent.type_name),
        )
        if (found := tried.get(combination)) is None:
            keys = tuple(self.get_possible_keys(context))
            found = tried[combination] = (keys, all("." not in key for key in keys))
        keys, plain = found
        if plain and type(obj) is dict:
            value = next((obj[key] for key in keys if key in obj), None)
        else:
            value = next((v for key in keys if (v := get_value(obj, key, MISSING)) is not MISSING), None)
        if self.response_transformers:
            key_path = f"{context.key_path}.{context.key}"
            for transform_path, transform in self.response_transformers.items():
                if key_path.endswith(transform_path):
                    return transform(value)
        return value

    replace(AttributePicker, "__call__", pick)

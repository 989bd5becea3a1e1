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
    such combination and then read in moto's order (working them out was two thirds of a stream
    GetRecords' time in a 500-file burst). An object with a `Meta` (explicit aliases, which may
    differ per object), and a picker that transforms values or is not moto's aliasing one, are
    picked by moto as before. Responses are unchanged."""
    from moto.core.serialize import AttributePicker, AttributePickerContext, ResponseSerializer
    from moto.core.utils import MISSING, get_value

    original = ResponseSerializer.get_value
    tried: dict[tuple[Any, ...], tuple[tuple[str, ...], bool]] = {}

    def picked(self: Any, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        if not isinstance(picker, AttributePicker) or picker.response_transformers or hasattr(value, "Meta"):
            return original(self, value, key, shape)
        service = self.operation_model.service_model
        parent = getattr(shape, "parent", None)
        combination = (
            type(picker),
            tuple(picker.alias_providers),
            service.service_name,
            type(value),
            key,
            None if shape is None else (shape.name, shape.type_name, shape.serialization.get("name")),
            None if parent is None else (parent.name, parent.type_name),
        )
        if (found := tried.get(combination)) is None:
            context = AttributePickerContext(value, key, shape, self.operation_model, service, ".".join(self.path))
            keys = tuple(picker.get_possible_keys(context))
            found = tried[combination] = (keys, all("." not in k for k in keys))
        keys, plain = found
        if plain and type(value) is dict:
            return next((value[k] for k in keys if k in value), None)
        return next((v for k in keys if (v := get_value(value, k, MISSING)) is not MISSING), None)

    replace(ResponseSerializer, "get_value", picked)

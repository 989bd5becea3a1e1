"""What the catalog and the backends' catalog models share (here so neither imports the other's module)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# Names that suggest a credential: such values belong in Secrets Manager (job definition
# `secrets`), never in arguments or environment overrides, which are logged and stored.
SECRET_NAME = re.compile(r"(passw(or)?d|secret|token|api_?key|private_?key|credential)", re.IGNORECASE)


class CatalogModel(BaseModel):
    """A catalog entry: unknown fields are errors, and parsed entries never change. Validators are
    built at the first validation (defer_build), not when a handler imports the module."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

"""The CLI tests run against the same moto stack as the handler tests."""

from tests.unit.conftest import env

__all__ = ["env"]

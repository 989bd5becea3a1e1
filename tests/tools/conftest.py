"""The CLI tests run against the same moto stack as the handler tests (and its fan-out catalog)."""

from tests.unit.conftest import env
from tests.unit.test_fanouts import fan

__all__ = ["env", "fan"]

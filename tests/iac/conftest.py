"""The integration suite's moto fixtures, for the definition's checks that run on moto's engine."""

from tests.integration.test_backends_state_machine import backends, script  # noqa: F401

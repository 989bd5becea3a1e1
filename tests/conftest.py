"""What every test shares: AWS's contracts (jobline_local.contracts, docs/CONTRACTS.md) on every
request moto receives, with AWS's default rates and a fresh record for each test - so whether a
request is refused never depends on which tests ran before it."""

from __future__ import annotations

from tests.local.aws_contracts import aws_contracts  # noqa: F401 - autouse: the contracts on every test

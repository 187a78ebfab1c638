"""Shared fixtures live in ``tests/fixtures/``, one module per real component."""

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.kafka",
    "tests.fixtures.models",
    "tests.fixtures.server",
    "tests.fixtures.private_redis",
]

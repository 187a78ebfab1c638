"""Shared fixtures live in ``tests/fixtures/``, one module per real component."""

import os

import pytest

# As `make test` exports it: implicit (ALS) and the numpy user tower are checked for exact
# results, which a threaded OpenBLAS reorders; set before any fixture imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.kafka",
    "tests.fixtures.models",
    "tests.fixtures.server",
    "tests.fixtures.prometheus",
    "tests.fixtures.bento",
    "tests.fixtures.markers",
]


@pytest.fixture
def anyio_backend() -> str:
    """The event loop of the async tests (``pytest.mark.anyio``): asyncio, as BentoML serves on."""
    return "asyncio"

"""The ALS runner service: the first fallback behind Two-Tower."""

from __future__ import annotations

import bentoml

from recipe_ml.models import REGISTRY
from runners.base import SERVICE_CONFIG, RankerRunner


@bentoml.service(name=REGISTRY["als"].runner, **SERVICE_CONFIG)
class ALSRunner(RankerRunner):
    kind = "als"

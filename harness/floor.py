"""The floor of one BentoML hop: a service whose one route parses the request's JSON and answers a constant.

    bentoml serve harness.floor:Floor --port 8200     # make bench starts it

It takes the recommendation body (``user_id``, ``exclude_recipe_ids``, ``top_k``) on the API's path and
answers an empty list: what BentoML itself costs for one request (its HTTP server, the body parsed
into typed arguments, the answer serialised), with no work behind it. ``make bench`` sets the API's
latency beside it, since each request of the API crosses such a hop to its runner.
"""

from __future__ import annotations

from typing import Any

import bentoml


@bentoml.service(name="floor", workers=1)
class Floor:
    """One route, no model: the request parsed and answered."""

    @bentoml.api(route="/api/recommendations/recipes")  # type: ignore[untyped-decorator]
    async def recipes(
        self, user_id: int, top_k: int = 10, exclude_recipe_ids: list[int] | None = None
    ) -> dict[str, Any]:
        """The body's user and no recommendations."""
        return {"user_id": user_id, "recommendations": []}

"""The interaction route: the HTTP alternative to publishing an event on Kafka."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from edge.problems import COMMON_ERRORS
from edge.routes.deps import EngineDep, JSONBodyRoute, respond
from recipe_ml.events.schema import InteractionEvent
from recipe_ml.serving.schemas import InteractionAccepted

router = APIRouter(route_class=JSONBodyRoute)
"""Behind the API key (when API_KEYS is set)."""


@router.post(
    "/interactions",
    name="interactions",
    operation_id="postInteraction",
    summary="Apply one interaction event (the HTTP alternative to Kafka)",
    status_code=202,
    response_model=InteractionAccepted,
    responses=COMMON_ERRORS,
)
async def interactions(body: InteractionEvent, request: Request, engine: EngineDep) -> Response:
    """The event the backend publishes to Kafka (camelCase or snake_case keys), applied through the
    consumer's code: the user's cached answers are dropped at once. The same `eventId` again changes
    nothing (`duplicate`). 503 while the interaction store is down: keep the event and retry."""
    return respond(request, await engine.record_interaction(body), status_code=202)

"""The engine's errors: each maps to one problem+json answer at the edge."""

from __future__ import annotations

from recipe_ml.serving.schemas import COLD_START_PATH, Problem


class UnknownUserError(LookupError):
    """The user is not in the training data and has no live interaction."""

    def __init__(self, user_id: int) -> None:
        super().__init__(
            f"user {user_id} is unknown to the models and has no interactions yet; "
            "use POST /api/recommendations/cold-start"
        )
        self.user_id = user_id

    def problem(self) -> Problem:
        """The 404 body (the same in a batch entry as for a single request)."""
        return Problem(
            type="urn:recipe-ml:problem:unknown-user",
            title="Unknown user",
            status=404,
            detail=str(self),
            user_id=self.user_id,
            cold_start=COLD_START_PATH,
        )


class UnknownRecipeError(LookupError):
    """The recipe is not in the models' catalogue: nothing is known to be like it."""

    def __init__(self, recipe_id: int) -> None:
        super().__init__(f"recipe {recipe_id} is unknown to the models")
        self.recipe_id = recipe_id

    def problem(self) -> Problem:
        return Problem(
            type="urn:recipe-ml:problem:unknown-recipe",
            title="Unknown recipe",
            status=404,
            detail=str(self),
            recipe_id=self.recipe_id,
        )


class BackendOverloadedError(RuntimeError):
    """A model service shed the request: too busy to start it in time (the next model answers).

    Told apart from transport failures on purpose: shedding is the runner
    protecting its latency under overload, not a fault.
    """


class NoModelError(RuntimeError):
    """No model of the chain could answer (only for similar users: popularity cannot)."""


class StoreUnavailableError(RuntimeError):
    """The interaction store is down: an event cannot be recorded now (503, retry)."""

"""The ranker's id mapping: what a query's raw ids come to in a model's indices."""

from __future__ import annotations

import numpy as np

from recipe_ml.data import IdMap
from recipe_ml.serving.ranker import known_indices


def test_known_indices_keep_the_ids_the_model_knows_in_their_order() -> None:
    ids = IdMap(np.asarray([3, 10, 42, 99]))

    assert known_indices(ids, [99, 7, 3, -1, 42]).tolist() == [3, 0, 2]
    assert known_indices(ids, []).tolist() == []


def test_an_id_beyond_int64_is_dropped_not_an_overflow() -> None:
    """A live interaction stored before every input was bounded may hold one."""
    ids = IdMap(np.asarray([3, 10, 42]))

    assert known_indices(ids, [42, 2**64, 3, -(2**70)]).tolist() == [2, 0]

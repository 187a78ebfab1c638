"""The fold-in reach measurement: a trained recipe standing in for a new one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.model_store import load_from_store
from harness.fold_in_reach import DEPTH, reach, summary, without_recipe


@pytest.mark.integration
def test_als_folded_in_from_all_its_training_fans_stands_where_the_trained_recipe_does(model_store: Path) -> None:
    """ALS's item step is the step that fitted the recipe: every user's list puts it at the same position."""
    model, _ = load_from_store("recipe_als", home=model_store)
    index = int(np.argsort(-np.diff(model.seen.tocsc().indptr), kind="stable")[50])
    users = np.setdiff1d(np.arange(200), model.seen.tocsc()[:, index].indices)

    folded, trained = reach(model, index, users, None)

    assert len(folded) == len(trained) == users.size
    assert folded == trained
    assert min(trained) <= DEPTH, "the recipe is in some of the lists: the comparison compares positions"


@pytest.mark.integration
def test_the_recipe_is_taken_out_of_a_copy_of_the_training_matrix_only(model_store: Path) -> None:
    model, _ = load_from_store("recipe_two_tower", home=model_store)
    before = model.seen.copy()

    masked = without_recipe(model, 3)

    assert masked.seen.tocsc()[:, 3].nnz == 0 and before.tocsc()[:, 3].nnz > 0
    assert (masked.seen != before).nnz == before.tocsc()[:, 3].nnz
    assert (model.seen != before).nnz == 0 and masked.item_vectors is model.item_vectors


def test_the_summary_reads_top_10_top_100_and_the_median_position() -> None:
    assert summary(np.asarray([1, 5, 50, 200])) == "top 10  50.0%, top 100  75.0%, median     28"
    assert summary(np.asarray([DEPTH + 1, DEPTH + 1, 3])) == f"top 10  33.3%, top 100  33.3%, median > {DEPTH}"

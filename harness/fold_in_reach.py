"""How far a recipe the models were not trained on reaches once folded in: its future fans' lists.

    python -m harness.fold_in_reach                         # make fold-in-reach
    python -m harness.fold_in_reach --recipes 40 --cooks 3 10

Fits the Two-Tower (with its personal scorer) and ALS on the train split, as
training does, and lets trained recipes stand in for new ones. For each of
``--recipes`` recipes (drawn, seeded, from those with at least
``--min-fans`` fans in train and some in validation), the model is copied
with the recipe's column emptied (no training user has it; its trained copy
is excluded from every answer) and the recipe is folded in, under an id no
model knows, from its first ``K`` training fans, as serving folds in a new
recipe (``ModelRanker``, the personal scorer included); ``all`` folds it in
from every training fan. Its validation fans (training users who came to it
later) are ranked: where it stands in their lists. Beside it, the same fans
ranked by the model trained with it: where the trained recipe stands, from
the same training fans as the ``all`` row. Printed per number of cooks: the
share of those fans whose top 10 holds it, whose top 100 does, and its
median position. About a minute (the fits).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recipe_ml.config import DATA_DIR
from recipe_ml.data import load_splits
from recipe_ml.models import model_kind
from recipe_ml.models.base import Recommender
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.wire import NewRecipe, RankQuery, RankResult
from recipe_ml.training.trainer import PERSONAL_POLICY, build_model, fit_model, fit_personal

STAND_IN = 2**62
"""The id the recipe is folded in under: no model knows it."""
SEED = 20261203


DEPTH = 1000
"""Positions read of each answer: a recipe further down counts as beyond it."""


@dataclass(frozen=True)
class Reach:
    """Where the measured recipes stand in their other fans' lists: folded in from ``cooks`` fans, and trained."""

    cooks: int | None
    """Training fans it was folded in from (None: all)."""
    folded: np.ndarray
    """(fans,) the folded-in recipe's position in each other fan's list (1 = first; DEPTH + 1: beyond DEPTH)."""
    trained: np.ndarray
    """(fans,) the trained recipe's position in the same fans' lists."""


def summary(positions: np.ndarray) -> str:
    """Top-10 share, top-100 share and median position of ``positions``."""
    median = float(np.median(positions))
    shown = f"{median:.0f}" if median <= DEPTH else f"> {DEPTH}"
    return f"top 10 {np.mean(positions <= 10):6.1%}, top 100 {np.mean(positions <= 100):6.1%}, median {shown:>6}"


def without_recipe(model: Recommender, index: int) -> Recommender:
    """A shallow copy of ``model`` whose training matrix has no user for the recipe at ``index``."""
    seen = model.seen.tocsc(copy=True)
    seen.data[seen.indptr[index] : seen.indptr[index + 1]] = 0
    seen.eliminate_zeros()
    masked = copy.copy(model)
    masked.seen = seen.tocsr()
    return masked


def positions(answers: Sequence[RankResult], recipe_id: int) -> list[int]:
    """The position of ``recipe_id`` in each answer (DEPTH + 1 where it is not in it)."""
    return [
        answer.recipe_ids.index(recipe_id) + 1 if recipe_id in answer.recipe_ids else DEPTH + 1 for answer in answers
    ]


def reach(model: Recommender, index: int, later: np.ndarray, cooks: int | None) -> tuple[list[int], list[int]]:
    """The recipe's positions in the lists of its ``later`` fans (user indices): folded in from its first
    ``cooks`` training fans (None: all of them), and trained."""
    fans = model.seen.tocsc()[:, index].indices[:cooks]
    recipe = int(model.items.ids[index])
    new = [NewRecipe(recipe_id=STAND_IN, user_ids=[int(u) for u in model.users.ids[fans]])]
    users = [int(u) for u in model.users.ids[later]]
    masked = ModelRanker(without_recipe(model, index), "masked", precompute=False, fold_in_min_users=len(fans))
    folded = masked.rank(
        [RankQuery(user_id=u, exclude_recipe_ids=[recipe], new_recipes=new, top_k=DEPTH) for u in users]
    )
    trained = ModelRanker(model, "trained", precompute=False).rank([RankQuery(user_id=u, top_k=DEPTH) for u in users])
    return positions(folded, STAND_IN), positions(trained, recipe)


def measure(
    model: Recommender, later: sp.csc_matrix, recipes: Sequence[int], cooks: Sequence[int | None]
) -> list[Reach]:
    """The positions over ``recipes`` (indices) in the lists of their fans in ``later`` (users x recipes), pooled,
    for each number of cooks."""
    rows = []
    for count in cooks:
        folded: list[int] = []
        trained: list[int] = []
        for index in recipes:
            f, t = reach(model, index, later[:, index].indices, count)
            folded += f
            trained += t
        rows.append(Reach(count, np.asarray(folded), np.asarray(trained)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", type=int, default=100, help="recipes measured")
    parser.add_argument("--min-fans", type=int, default=13, help="training fans a measured recipe has at least")
    parser.add_argument("--cooks", type=int, nargs="+", default=[3, 6, 12], help="training fans it is folded in from")
    args = parser.parse_args()
    splits = load_splits(DATA_DIR)
    train, later = splits["train"], splits["validation"].matrix()
    # A validation fan who also has the recipe in train is no later fan of it.
    later = (later - later.multiply(train.matrix())).tocsc()
    later.eliminate_zeros()
    fans = np.diff(train.matrix().tocsc().indptr)
    eligible = np.flatnonzero((fans >= max(args.min_fans, max(args.cooks))) & (np.diff(later.indptr) > 0))
    recipes = np.sort(np.random.default_rng(SEED).choice(eligible, min(args.recipes, eligible.size), replace=False))
    print(
        f"{len(recipes)} recipes of the {eligible.size} with at least {args.min_fans} training fans and a later one"
        f" (median training fans {int(np.median(fans[recipes]))}, {int(np.diff(later.indptr)[recipes].sum())} later)"
    )
    for kind in ("two_tower", "als"):
        start = time.perf_counter()
        model = build_model(kind, SEED, None)
        fit_model(model, train, show_progress=False)
        if model_kind(kind).personal:
            model.attach_personal(fit_personal(train), PERSONAL_POLICY)
        print(f"{model.served_as}, fitted on train in {time.perf_counter() - start:.0f} s:")
        for row in measure(model, later, recipes.tolist(), [*args.cooks, None]):
            name = "all its" if row.cooks is None else f"{row.cooks:>2}"
            print(f"  folded in from {name:>7} training fans: {summary(row.folded)}")
        print(f"  {'trained on them:':<37} {summary(row.trained)}")


if __name__ == "__main__":
    main()

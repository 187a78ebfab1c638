"""Catalogue scale: exact scoring against the recipe index, at 100k and 1M recipes.

    python -m harness.bench_scale --bentoml-home ./bentoml_home                  # make bench-scale
    python -m harness.bench_scale --bentoml-home ./bentoml_home --sizes 100000 --shape als --tail-share 0.05

Draws synthetic catalogues shaped like a stored model (``harness.catalogue``:
the trained vectors' mean, covariance spectrum, norms and biases; users and
their histories the same way), then serves them with the project's own
``ModelRanker``: its ranking policy on top (each user's history excluded,
``include_recipe_ids`` as the filter, MMR at the default diversity). Per size
it prints, for exact numpy scoring and for each graph library: build time,
the index's memory (and per million recipes), p50/p99 of one query and of a
batch of 64 (retrieval alone, then the whole answer), and recall@10 and
nDCG@10 of the answer against exact scoring's, unfiltered and at 50%, 10%,
1% and 0.1% selectivity. The targets at 1M are printed, never asserted:
absolute figures move with the machine's load, so compare within a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import psutil

from harness.ann_backends import GRAPHS
from harness.catalogue import Shape, SyntheticRecommender, draw_model
from recipe_ml.config import get_settings
from recipe_ml.ranking import candidate_pool, top_k_rows
from recipe_ml.retrieval.base import IndexParams, RecipeIndex, item_rows, query_rows
from recipe_ml.retrieval.candidates import CandidateQuery, retrieve
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.wire import RankQuery

T = TypeVar("T")

SELECTIVITIES = (1.0, 0.5, 0.1, 0.01, 0.001)
"""Shares of the catalogue a query may return (``include_recipe_ids``); 1.0: no filter."""
TOP_K = 10
BATCH = 64
RECALL_TARGET = 0.95
SPEEDUP_TARGET = 10.0


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        return cls(float(np.percentile(seconds, 50)) * 1e3, float(np.percentile(seconds, 99)) * 1e3)

    def __str__(self) -> str:
        return f"{self.p50_ms:8.2f} / {self.p99_ms:8.2f}"


def timed(call: Callable[[T], object], args: Sequence[T]) -> Timing:
    """p50/p99 of ``call(arg)`` over ``args``."""
    seconds = []
    for arg in args:
        start = time.perf_counter()
        call(arg)
        seconds.append(time.perf_counter() - start)
    return Timing.of(seconds)


def rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


def answers(ranker: ModelRanker, queries: Sequence[RankQuery]) -> list[list[int]]:
    """Recipe ids answered per query, one query at a time (as uncached requests arrive)."""
    return [ranker.rank([query])[0].recipe_ids for query in queries]


def recall_ndcg(found: Sequence[Sequence[int]], exact: Sequence[Sequence[int]]) -> tuple[float, float]:
    """Mean recall@10 and nDCG@10 of ``found`` with exact scoring's top 10 as the relevant recipes."""
    discounts = 1.0 / np.log2(np.arange(TOP_K) + 2.0)
    recalls, ndcgs = [], []
    for got, want in zip(found, exact, strict=True):
        relevant = set(want[:TOP_K])
        if not relevant:
            continue
        hits = np.asarray([recipe in relevant for recipe in got[:TOP_K]], dtype=float)
        recalls.append(hits.sum() / len(relevant))
        ndcgs.append(float((hits * discounts[: len(hits)]).sum() / discounts[: len(relevant)].sum()))
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def filtered_queries(model: SyntheticRecommender, users: np.ndarray, selectivity: float) -> list[RankQuery]:
    """One query per user (diversity at its default), filtered to a random ``selectivity`` share of recipes."""
    diversity = get_settings().mmr_diversity_weight
    include = None
    if selectivity < 1.0:
        rng = np.random.default_rng(int(selectivity * 1e6))
        count = max(int(len(model.items) * selectivity), TOP_K)
        include = model.items.ids[rng.choice(len(model.items), count, replace=False)].tolist()
    return [
        RankQuery(user_id=int(user), top_k=TOP_K, diversity=diversity, include_recipe_ids=include) for user in users
    ]


def exact_retrieval(model: SyntheticRecommender, rows: np.ndarray, need: int) -> np.ndarray:
    """What exact numpy scoring does to retrieve for the users ``rows``: score every recipe, keep the best ``need``."""
    return top_k_rows(model.score(model.user_vectors[rows]), need)


def index_retrieval(index: RecipeIndex, model: SyntheticRecommender, rows: np.ndarray, *, need: int) -> object:
    """What the index does to retrieve the same (the queries' histories excluded)."""
    requests = [
        CandidateQuery(need, None, model.history(int(row)), np.zeros(0, dtype=np.int64)) for row in rows.tolist()
    ]
    return retrieve(index, query_rows(model.user_vectors[rows]), requests)


def bench_size(shape: Shape, size: int, graphs: Sequence[str], params: IndexParams, n_queries: int) -> None:
    users = min(size, 100_000)
    print(f"\n=== {size:,} recipes, {users:,} users ({shape.kind} shape) ===")
    model = draw_model(shape, size, users, seed=0)
    rng = np.random.default_rng(1)
    user_rows = rng.choice(users, n_queries, replace=False)
    user_ids = model.users.ids[user_rows]
    need = candidate_pool(TOP_K, get_settings().mmr_diversity_weight)
    batches = [user_rows[i : i + BATCH] for i in range(0, len(user_rows) - BATCH + 1, BATCH)] or [user_rows]
    exact = ModelRanker(model, "exact", ann_min_recipes=None)
    print("scoring exactly ...", flush=True)
    exact_answers = {s: answers(exact, filtered_queries(model, user_ids, s)) for s in SELECTIVITIES}
    unfiltered = filtered_queries(model, user_ids, 1.0)
    singles = [user_rows[i : i + 1] for i in range(n_queries)]

    def measure(name: str, ranker: ModelRanker, retrieval: Callable[[np.ndarray], object], repeats: int) -> Row:
        quality = {
            s: recall_ndcg(answers(ranker, filtered_queries(model, user_ids, s)), exact_answers[s])
            for s in SELECTIVITIES
        }
        return Row(
            name,
            retrieve_1=timed(retrieval, singles[:repeats]),
            retrieve_64=timed(retrieval, batches),
            answer_1=timed(lambda r: ranker.rank(_queries(unfiltered, user_rows, r)), singles[:repeats]),
            answer_64=timed(lambda r: ranker.rank(_queries(unfiltered, user_rows, r)), batches),
            quality=quality,
        )

    # Exact scoring is the slow side: fewer single-query repeats.
    rows = [measure("exact numpy", exact, lambda r: exact_retrieval(model, r, need), max(n_queries // 5, 1))]
    for name in graphs:
        print(f"building the {name} graph ...", flush=True)
        before, start = rss(), time.perf_counter()
        index = RecipeIndex.build(item_rows(model.item_vectors, model.item_bias), GRAPHS[name], params)
        build_s, grown = time.perf_counter() - start, rss() - before
        model.index = index
        row = measure(
            name,
            ModelRanker(model, name, ann_min_recipes=1),
            partial(index_retrieval, index, model, need=need),
            n_queries,
        )
        rows.append(dataclasses.replace(row, build_s=build_s, index_bytes=index.nbytes(), rss_growth=grown))
        model.index = None
    report(size, rows)


@dataclass(frozen=True)
class Row:
    """One line of the report: exact scoring, or one graph library."""

    name: str
    retrieve_1: Timing
    retrieve_64: Timing
    answer_1: Timing
    answer_64: Timing
    quality: dict[float, tuple[float, float]]
    """(recall@10, nDCG@10) against exact scoring, per selectivity."""
    build_s: float = 0.0
    index_bytes: int = 0
    rss_growth: int = 0


def _queries(queries: Sequence[RankQuery], user_rows: np.ndarray, rows: np.ndarray) -> list[RankQuery]:
    """The queries of ``rows`` (user rows of the catalogue), from the list made for ``user_rows``."""
    position = {int(row): i for i, row in enumerate(user_rows.tolist())}
    return [queries[position[int(row)]] for row in rows.tolist()]


def report(size: int, rows: Sequence[Row]) -> None:
    print(
        f"\n{'':12} {'build s':>8} {'index MB':>9} {'MB per 1M':>9} {'RSS+ MB':>8}  {'p50 / p99 ms:':>13}"
        f" {'retrieve 1':>19} {'retrieve 64':>19} {'answer 1':>19} {'answer 64':>19}"
    )
    for row in rows:
        mb = row.index_bytes / 1e6
        print(
            f"{row.name:12} {row.build_s:8.1f} {mb:9.1f} {mb * 1e6 / size:9.0f} {row.rss_growth / 1e6:8.0f}  {'':13}"
            f" {row.retrieve_1!s:>19} {row.retrieve_64!s:>19} {row.answer_1!s:>19} {row.answer_64!s:>19}"
        )
    print(f"\n{'recall@10 / nDCG@10':20}" + "".join(f"{_label(s):>14}" for s in SELECTIVITIES))
    for row in rows:
        print(f"{row.name:20}" + "".join(f"{row.quality[s][0]:>8.3f}/{row.quality[s][1]:.3f}" for s in SELECTIVITIES))
    exact = rows[0]
    for row in rows[1:]:
        worst = min(recall for recall, _ in row.quality.values())
        speedup = exact.retrieve_1.p50_ms / row.retrieve_1.p50_ms
        print(
            f"targets ({row.name}, {size:,} recipes): recall@10 >= {RECALL_TARGET} at every selectivity: "
            f"{worst:.3f} {'met' if worst >= RECALL_TARGET else 'MISSED'}; one query's retrieval >= "
            f"{SPEEDUP_TARGET:g}x faster than exact: {speedup:.1f}x "
            f"{'met' if speedup >= SPEEDUP_TARGET else 'MISSED'}; "
            f"index memory per million recipes: {row.index_bytes / size:.0f} MB"
        )


def _label(selectivity: float) -> str:
    return "no filter" if selectivity >= 1.0 else f"{selectivity:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, required=True, help="the model store to shape the catalogue on")
    parser.add_argument("--shape", default="two_tower", choices=("two_tower", "als"), help="the stored model to draw")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated recipe counts")
    parser.add_argument("--graphs", default=",".join(GRAPHS), help=f"comma-separated of {', '.join(GRAPHS)}")
    parser.add_argument("--queries", type=int, default=200, help="users queried per measurement")
    parser.add_argument(
        "--tail-share", type=float, default=IndexParams().tail_share, help="share of the longest rows scored exactly"
    )
    args = parser.parse_args()
    from edge.model_store import load_from_store  # the store is read once, here

    stored, tag = load_from_store(get_settings().model_name(args.shape), home=args.bentoml_home)
    print(f"shape: {tag}, {len(stored.items):,} recipes x {stored.item_vectors.shape[1]} dimensions")
    shape = Shape.of(stored)
    for size in (int(s) for s in args.sizes.split(",")):
        params = IndexParams(tail_share=args.tail_share)
        bench_size(shape, size, [g for g in args.graphs.split(",") if g], params, args.queries)
    print(f"\n{os.cpu_count()} cores; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")


if __name__ == "__main__":
    main()

"""The offline evaluation report: fit on train, rank all recipes for every validation user, write it.

The library behind ``recipe-ml evaluate`` (``scripts/evaluate.py``): this
module fits and measures (the numbers are ``recipe_ml.evaluation.results``),
``recipe_ml.evaluation.rendering`` and ``recipe_ml.evaluation.charts`` write
them. Writes ``evaluation.md`` (metrics overall and per user-activity quartile, the
personal scorers compared, the personal policy fitted on validation, the ALS
grid, the full-training time), ``evaluation.png`` (metrics per model) and
``frontier.png`` (nDCG@20 against coverage@10 and personalisation per personal
scorer and policy, the shipped point marked). Protocol: every validation
rating is a positive; recipes rated in train are excluded; metric definitions
are in ``recipe_ml.evaluation.metrics``.
"""

from __future__ import annotations

import copy
import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recipe_ml.config import get_settings
from recipe_ml.data import Interactions, concat, load_splits, sample_users
from recipe_ml.evaluation.charts import render_chart, render_frontier
from recipe_ml.evaluation.policy import AffinityScorer, fit_policy
from recipe_ml.evaluation.protocol import METRICS, evaluate
from recipe_ml.evaluation.rendering import render_markdown
from recipe_ml.evaluation.results import ALS_GRID, BASELINE, SHIPPED, ModelResult, Sweeps
from recipe_ml.models import KINDS, model_class, model_kind
from recipe_ml.models.base import Recommender
from recipe_ml.models.ease import EASEScorer
from recipe_ml.models.popularity import PopularityRecommender
from recipe_ml.ranking import PERSONAL_WINDOW, PersonalPolicy
from recipe_ml.training.trainer import PERSONAL_POLICY, build_model, fit_model, fit_personal

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def evaluate_models(
    splits: dict[str, Interactions], seed: int, epochs: int | None, show_progress: bool
) -> tuple[list[ModelResult], list[dict[str, float]], dict[str, Recommender]]:
    """Fit the count baseline and every kind (default hyper-parameters) on train; validation metrics.

    Also returns the Two-Tower's validation metrics after each epoch (its fit
    time then includes those evaluations) and the fitted models by row name.
    Two rows for the Two-Tower: alone (the fallback policy of a model trained
    without a personal scorer) and with the personal scorer and the shipped
    policy. Models with item vectors are evaluated a second time with the
    serving default MMR diversity, so the report shows what users get.
    """
    train, validation = splits["train"], splits["validation"]
    diversity = get_settings().mmr_diversity_weight
    results = []
    curve: list[dict[str, float]] = []
    fitted: dict[str, Recommender] = {}
    models: list[tuple[str, Recommender]] = [(BASELINE, PopularityRecommender(weighting="count"))]
    models += [(f"{kind}_5star" if kind == "popularity" else kind, build_model(kind, seed, epochs)) for kind in KINDS]
    for name, model in tqdm(models, desc="evaluate", unit="model", disable=not show_progress):

        def record(epoch: int, model: Recommender = model) -> None:
            curve.append({"epoch": epoch, **evaluate(model, train, validation).overall})

        start = time.perf_counter()
        fit_model(model, train, on_epoch=record if name == "two_tower" else None)
        seconds = time.perf_counter() - start
        results.append(_result(name, model, splits, seconds, diversity))
        fitted[name] = model
        if model_kind(model.kind).personal:
            start = time.perf_counter()
            with_personal = copy.copy(model)  # the same fitted towers, plus the personal scorer
            with_personal.attach_personal(fit_personal(train), PERSONAL_POLICY)
            seconds += time.perf_counter() - start
            results.append(_result(with_personal.served_as, with_personal, splits, seconds, diversity))
            fitted[with_personal.served_as] = with_personal
    return results, curve, fitted


def _result(
    name: str, model: Recommender, splits: dict[str, Interactions], seconds: float, diversity: float
) -> ModelResult:
    train, validation = splits["train"], splits["validation"]
    detail = evaluate(model, train, validation)
    served = evaluate(model, train, validation, diversity=diversity).overall if model.supports_similarity else None
    params = model.hyper_parameters()
    if model.personal is not None and model.policy is not None:
        params = {**params, "personal": model.personal.hyper_parameters(), "policy": model.policy.as_dict()}
    return ModelResult(name, detail, seconds, params, served)


def sweep_sources(fitted: dict[str, Recommender], splits: dict[str, Interactions]) -> Sweeps:
    """The towers' dot product and ALS as the source of the personal picks, 0..10 positions for every user.

    The head is the same as the shipped model's (the Two-Tower's ranking) and
    there is no blend, so the rows compare the sources alone; the EASE rows
    come from the policy fit (``fit_policy``), per blend weight, 0 included.
    """
    train, validation = splits["train"], splits["validation"]
    sweeps = Sweeps()
    for name, label in (("two_tower", "towers' dot product"), ("als", "ALS")):
        candidate = copy.copy(fitted["two_tower"])
        candidate.attach_personal(AffinityScorer(fitted[name]), PersonalPolicy(0.0, 0.0, 0.0))
        sweeps.sources[label] = [
            {
                "positions": float(n),
                **evaluate(candidate, train, validation, personalization=n / PERSONAL_WINDOW).overall,
            }
            for n in range(PERSONAL_WINDOW + 1)
        ]
    return sweeps


def tune_als(splits: dict[str, Interactions], seed: int, show_progress: bool) -> list[ModelResult]:
    """Every ALS setting of ``ALS_GRID`` (128 factors), best nDCG@20 first."""
    results = []
    grid = list(itertools.product(*ALS_GRID.values()))
    for values in tqdm(grid, desc="ALS grid", disable=not show_progress):
        params: dict[str, Any] = dict(zip(ALS_GRID, values, strict=True))
        model = model_class("als")(**{"seed": seed, **params})
        start = time.perf_counter()
        model.fit(splits["train"])
        seconds = time.perf_counter() - start
        detail = evaluate(model, splits["train"], splits["validation"])
        results.append(ModelResult("als", detail, seconds, params))
    return sorted(results, key=lambda r: -r.metrics["ndcg@20"])


def full_training_seconds(splits: dict[str, Interactions], seed: int, epochs: int | None) -> dict[str, float]:
    """Fit time of each model and of the personal scorer on train + validation, as the trainer ships them."""
    data = concat([splits["train"], splits["validation"]])
    seconds = {}
    for kind in KINDS:
        model = build_model(kind, seed, epochs)
        start = time.perf_counter()
        fit_model(model, data)
        seconds[kind] = time.perf_counter() - start
    start = time.perf_counter()
    EASEScorer().fit(data.matrix())
    seconds["personal scorer (ease)"] = time.perf_counter() - start
    return seconds


def oracle_popularity(splits: dict[str, Interactions]) -> dict[str, float]:
    """Metrics of popularity counted on validation itself: the ceiling of any global ranking.

    Not a model (it sees the answers); it shows how much a better popularity
    estimate could gain at most, i.e. what personalisation has to add.
    """
    oracle = PopularityRecommender(weighting="count")
    oracle.fit(splits["validation"])
    return evaluate(oracle, splits["train"], splits["validation"]).overall


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    n_sample_users: int | None = None,
    epochs: int | None = None,
    tune: bool = False,
    time_full_training: bool = True,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[ModelResult]:
    """Evaluate, write ``evaluation.md``, ``evaluation.png`` and ``frontier.png`` under ``out_dir``."""
    splits = load_splits(data_dir, ("train", "validation"))
    if n_sample_users is not None:
        splits = sample_users(splits, n_sample_users, seed)
    results, curve, fitted = evaluate_models(splits, seed, epochs, show_progress)
    for r in results:
        log(f"{r.kind:>16}: " + " ".join(f"{m}={r.metrics[m]:.4f}" for m in METRICS) + f" fit={r.seconds:.1f}s")
    sweeps = sweep_sources(fitted, splits)
    baseline = next(r for r in results if r.kind == BASELINE).evaluation.per_user_ndcg20
    fit = fit_policy(fitted[SHIPPED], splits["train"], splits["validation"], baseline) if SHIPPED in fitted else None
    if fit is not None:
        log(f"fitted personal policy: {fit.best.policy.as_dict()} (shipped: {PERSONAL_POLICY.as_dict()})")
    oracle = oracle_popularity(splits)
    als_grid = tune_als(splits, seed, show_progress) if tune else []
    full = full_training_seconds(splits, seed, epochs) if time_full_training else None
    if full is not None:
        log(f"full training (train + validation): {sum(full.values()):.1f}s")
    note = f"Sample of {n_sample_users} users." if n_sample_users is not None else f"Seed {seed}."
    out_dir.mkdir(parents=True, exist_ok=True)
    report = render_markdown(results, curve, sweeps, fit, oracle, als_grid, full, splits, note)
    (out_dir / "evaluation.md").write_text(report)
    render_chart(results, out_dir / "evaluation.png")
    render_frontier(results, sweeps, fit, out_dir / "frontier.png")
    log(f"wrote {out_dir / 'evaluation.md'}, {out_dir / 'evaluation.png'} and {out_dir / 'frontier.png'}")
    return results

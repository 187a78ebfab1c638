"""Train every model kind of the registry and hand each to a model sink (the BentoML store at the edge).

The library behind ``recipe-ml train`` (``scripts/train.py``): what to fit,
on which data, with which metadata. Where a model is kept is the caller's
``save`` (``edge.model_store.save_to_store``), so the domain package never
imports BentoML.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recipe_ml.config import DATA_DIR, get_settings
from recipe_ml.data import (
    HEALTH_FILE,
    Interactions,
    concat,
    fingerprint,
    load_splits,
    sample_users,
    split_path,
)
from recipe_ml.evaluation.protocol import evaluate
from recipe_ml.models import KINDS, model_kind
from recipe_ml.models.base import Recommender
from recipe_ml.models.ease import EASEScorer
from recipe_ml.ranking import PersonalPolicy

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with a threaded OpenBLAS


SaveModel = Callable[[Recommender, str, dict[str, Any], dict[str, str]], str]
"""Keeps a fitted model: ``(model, store name, metadata, labels) -> tag``."""


@dataclass(frozen=True)
class TrainedModel:
    """What ``train_all`` did for one model."""

    kind: str
    tag: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def store_name(kind: str) -> str:
    """The model store name of a kind, from ``Settings`` (a ``:version`` suffix is dropped)."""
    return get_settings().model_name(kind).split(":", 1)[0]


PERSONAL_POLICY = PersonalPolicy(blend_weight=500.0, intercept=0.5, per_doubling=1.5)
"""The personal policy fitted on validation by ``recipe_ml.evaluation.report`` (the report's "Personal policy" section
says whether these are still the fitted values)."""


def build_model(kind: str, seed: int, epochs: int | None) -> Recommender:
    """A model of ``kind`` with its default (tuned) hyper-parameters, seeded where the kind takes a seed.

    ``epochs`` (None: the tuned number) applies to the kinds that train in epochs.
    """
    row = model_kind(kind)
    kwargs: dict[str, Any] = {}
    if row.seeded:
        kwargs["seed"] = seed
    if row.trains_in_epochs and epochs is not None:
        kwargs["epochs"] = epochs
    return row.model_class()(**kwargs)


def fit_model(
    model: Recommender, data: Interactions, show_progress: bool = False, on_epoch: Callable[[int], None] | None = None
) -> None:
    """Fit ``model`` on ``data`` epoch by epoch, ``on_epoch`` after each (a progress bar for a kind that trains in
    epochs)."""
    epochs = model.fit_epochs(data, export_every_epoch=on_epoch is not None)
    progress = show_progress and model_kind(model.kind).trains_in_epochs
    for epoch in tqdm(epochs, total=model.epochs, desc=model.kind, unit="epoch", disable=not progress):
        if on_epoch is not None:
            on_epoch(epoch)


def fit_personal(data: Interactions) -> EASEScorer:
    """The personal scorer, fitted on ``data`` (one fit, attached to every kind that ships with it)."""
    scorer = EASEScorer()
    scorer.fit(data.matrix())
    return scorer


def train_all(
    save: SaveModel,
    data_dir: Path = DATA_DIR,
    *,
    eval_mode: bool = False,
    seed: int = 0,
    n_sample_users: int | None = None,
    epochs: int | None = None,
    kinds: Sequence[str] = KINDS,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[TrainedModel]:
    """Fit each kind and ``save`` it; returns tags, timings and metrics.

    ``eval_mode`` fits on train only and stores validation metrics with the
    model; otherwise models are fitted on train + validation, as shipped.
    """
    splits = load_splits(data_dir, ("train", "validation"))
    if n_sample_users is not None:
        splits = sample_users(splits, n_sample_users, seed)
    train: Interactions = splits["train"] if eval_mode else concat([splits["train"], splits["validation"]])
    trained_on = "train" if eval_mode else "train+validation"
    files = [split_path(data_dir, s) for s in ("train", "validation")] + [data_dir / HEALTH_FILE]
    data_fingerprint = fingerprint([f for f in files if f.is_file()])
    log(f"data: {len(train):,} interactions, {len(train.users):,} users, {len(train.items):,} recipes ({trained_on})")

    results = []
    personal: EASEScorer | None = None
    personal_seconds = 0.0
    for kind in tqdm(kinds, desc="models", unit="model", disable=not show_progress):
        model = build_model(kind, seed, epochs)
        model.use_device(get_settings().device)
        start = time.perf_counter()
        fit_model(model, train, show_progress)
        if model.supports_similarity:
            model.build_index()  # built here, so the stored version serves with the index it was trained with
        if model_kind(kind).personal:
            if personal is None:
                personal_start = time.perf_counter()
                personal = fit_personal(train)
                personal_seconds = time.perf_counter() - personal_start
            model.attach_personal(personal, PERSONAL_POLICY)
        seconds = time.perf_counter() - start
        metrics = evaluate(model, splits["train"], splits["validation"]).overall if eval_mode else {}
        metadata = {
            "hyper_parameters": model.hyper_parameters(),
            "personalization": model.personalization,
            "metrics": metrics,
            "data_fingerprint": data_fingerprint,
            "n_users": len(train.users),
            "n_items": len(train.items),
            "trained_on": trained_on,
            "sample_users": n_sample_users or 0,  # 0: every user (BentoML metadata has no None)
            "seed": seed,
            "train_seconds": round(seconds, 2),
        }
        labels = {"stage": "evaluation" if eval_mode else "production", "kind": kind}
        tag = save(model, store_name(kind), metadata, labels)
        scorer = f" (personal scorer {personal_seconds:.1f}s)" if model.personal is not None else ""
        log(f"{model.served_as}: trained in {seconds:.1f}s{scorer} -> {tag}" + (f" {metrics}" if metrics else ""))
        results.append(TrainedModel(kind, tag, seconds, metrics))
    log(f"total training time: {sum(r.seconds for r in results):.1f}s")
    return results

"""Train every model kind of the registry and hand each to a model sink (the BentoML store at the edge).

The library behind ``recipe-ml train`` (``scripts/train.py``) and the
scheduled ``recipe-ml trainer``: what to fit, on which data, with which
metadata. A run measures each kind first, fitted on all but the held-out
split (``recipe_ml.training.snapshot``), asks the gate when there is one
(``recipe_ml.training.gate``), then fits the stored version on everything,
held-out split included, as shipped models always were. Where a model is
kept is the caller's ``save`` (``edge.model_store.save_to_store``), so the
domain package never imports BentoML.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from recipe_ml.config import DATA_DIR, get_settings
from recipe_ml.data import Interactions
from recipe_ml.evaluation.protocol import evaluate
from recipe_ml.models import KINDS, model_kind
from recipe_ml.models.base import Recommender
from recipe_ml.models.ease import EASEScorer
from recipe_ml.ranking import PersonalPolicy
from recipe_ml.training.gate import Candidate, Decision
from recipe_ml.training.snapshot import LiveData, Snapshot, code_version, no_live_data, take_snapshot

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) with a threaded OpenBLAS


SaveModel = Callable[[Recommender, str, dict[str, Any], dict[str, str]], str]
"""Keeps a fitted model: ``(model, store name, metadata, labels) -> tag``."""
Gate = Callable[[Sequence[Candidate], str], Decision]
"""Decides on a run's candidates: ``(candidates, held-out fingerprint) -> Decision``."""


@dataclass(frozen=True)
class TrainedModel:
    """What ``train_all`` stored for one model."""

    kind: str
    tag: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingRun:
    """What ``train_all`` did: the stored models (none when the gate refused), the candidates and the decision."""

    models: list[TrainedModel]
    candidates: list[Candidate]
    decision: Decision | None
    rows: dict[str, int]

    @property
    def refused(self) -> bool:
        return self.decision is not None and not self.decision.promote


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


class _Fitter:
    """Fits models of one run; the personal scorer is fitted once per dataset, shared by the kinds that ship with it."""

    def __init__(self, seed: int, epochs: int | None, show_progress: bool, log: Callable[[str], None]) -> None:
        self.seed, self.epochs, self.show_progress, self.log = seed, epochs, show_progress, log
        self._personal: tuple[Interactions, EASEScorer] | None = None

    def fit(self, kind: str, data: Interactions) -> tuple[Recommender, float]:
        """A fitted model of ``kind`` and its seconds (its personal scorer's included)."""
        model = build_model(kind, self.seed, self.epochs)
        model.use_device(get_settings().device)
        start = time.perf_counter()
        fit_model(model, data, self.show_progress)
        if model.supports_similarity:
            model.build_index()  # built here, so the stored version serves with the index it was trained with
        if model_kind(kind).personal:
            model.attach_personal(self._scorer(data), PERSONAL_POLICY)
        return model, time.perf_counter() - start

    def _scorer(self, data: Interactions) -> EASEScorer:
        if self._personal is None or self._personal[0] is not data:
            start = time.perf_counter()
            scorer = fit_personal(data)
            self.log(f"personal scorer (EASE): fitted in {time.perf_counter() - start:.1f}s")
            self._personal = (data, scorer)
        return self._personal[1]


def train_all(
    save: SaveModel,
    data_dir: Path = DATA_DIR,
    *,
    live: LiveData | None = None,
    gate: Gate | None = None,
    eval_mode: bool = False,
    seed: int = 0,
    n_sample_users: int | None = None,
    epochs: int | None = None,
    kinds: Sequence[str] = KINDS,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainingRun:
    """Measure each kind on the held-out split, let ``gate`` decide, then fit and ``save`` each one.

    ``live``: interactions the service applied (``snapshot.read_live``),
    fitted on with the shipped data. A refusal of ``gate`` stores nothing.
    ``eval_mode`` stores the measured models themselves (fitted without the
    held-out split) instead of fitting again on everything.
    """
    live = live if live is not None else no_live_data("live interactions: not read (no --live)")
    snapshot = take_snapshot(data_dir, live.ratings, n_sample_users=n_sample_users, seed=seed)
    rows = snapshot.rows
    log(live.note)
    log(
        f"data: {rows['train']:,} train + {rows['validation']:,} held-out + {rows['live']:,} live interactions, "
        f"{rows['users']:,} users, {rows['recipes']:,} recipes "
        f"({rows['live_only_users']:,} users and {rows['live_only_recipes']:,} recipes seen only live)"
    )
    fitter = _Fitter(seed, epochs, show_progress, log)
    candidates, measured = [], {}
    for kind in tqdm(kinds, desc="measure", unit="model", disable=not show_progress):
        model, seconds = fitter.fit(kind, snapshot.measured)
        figures = evaluate(model, snapshot.measured, snapshot.held_out).overall
        candidates.append(Candidate(kind, figures, personal=model.personal is not None))
        log(f"{model.served_as}: fitted without the held-out split in {seconds:.1f}s; held-out {_figures(figures)}")
        if eval_mode:
            measured[kind] = (model, seconds)
    decision = gate(candidates, snapshot.held_out_fingerprint) if gate is not None else None
    if decision is not None:
        log(decision.summary())
        if not decision.promote:
            return TrainingRun([], candidates, decision, rows)
    results = []
    for candidate in tqdm(candidates, desc="models", unit="model", disable=not show_progress):
        kind = candidate.kind
        model, seconds = measured[kind] if eval_mode else fitter.fit(kind, snapshot.full)
        metadata = _metadata(model, candidate, snapshot, eval_mode, n_sample_users, seed, seconds)
        if decision is not None:
            metadata["gate"] = decision.verdict(kind).line()
        tag = save(model, store_name(kind), metadata, {"kind": kind})
        log(f"{model.served_as}: trained on {metadata['trained_on']} in {seconds:.1f}s -> {tag}")
        results.append(TrainedModel(kind, tag, seconds, dict(candidate.figures)))
    log(f"total training time: {sum(r.seconds for r in results):.1f}s")
    return TrainingRun(results, candidates, decision, rows)


def _figures(figures: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in figures.items())


def _metadata(
    model: Recommender,
    candidate: Candidate,
    snapshot: Snapshot,
    eval_mode: bool,
    n_sample_users: int | None,
    seed: int,
    seconds: float,
) -> dict[str, Any]:
    """What a stored version records: its data, code, hyper-parameters and held-out figures."""
    trained_on = "train" if eval_mode else "train+validation"
    if snapshot.rows["live"]:
        trained_on += "+live"
    return {
        "hyper_parameters": model.hyper_parameters(),
        "personalization": model.personalization,
        "metrics": dict(candidate.figures),
        "held_out_fingerprint": snapshot.held_out_fingerprint,
        "data_fingerprint": snapshot.fingerprint,
        "rows": dict(snapshot.rows),
        "n_users": len(model.users),
        "n_items": len(model.items),
        "trained_on": trained_on,
        "code_version": code_version(),
        "sample_users": n_sample_users or 0,  # 0: every user (BentoML metadata has no None)
        "seed": seed,
        "train_seconds": round(seconds, 2),
    }

"""The one interface every recommender implements, as ``implicit``'s ``RecommenderBase``.

A model maps users and recipes to vectors in one space; a score is a dot
product plus an optional per-recipe bias. That single shape lets the serving
layer batch any model as one matrix product, fold in users who appeared after
training, and find similar users, without knowing which model it holds. The
shared implementation of that shape (the vectors, the products, their files)
is ``recipe_ml.models.vectors.VectorRecommender``, as ``implicit``'s
``MatrixFactorizationBase``; this module is the contract, the personal
positions built on it, and the saved model's layout.

Indices, not raw ids, cross this interface: ``IdMap`` (in ``recipe_ml.data``)
translates. Raw Allrecipes ids only appear at the edges.
"""

from __future__ import annotations

import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import Histories, IdMap, Interactions
from recipe_ml.ranking import PersonalPolicy, RankInputs
from recipe_ml.retrieval.base import IndexMismatchError, IndexParams, RecipeIndex, item_rows

META_FILE = "recommender.json"
PERSONAL_DIR = "personal"
PERSONAL_META = "personal.json"
SHIPPED_SCORER = "ease"
"""The scorer of a saved model that does not name its own: saved when it was the only one."""
INDEX_DIR = "index"

logger = logging.getLogger(__name__)


class PersonalScorer(Protocol):
    """What ranks the personal positions: scores of every recipe from users' recipes.

    The kinds that ship are the rows of ``recipe_ml.models.PERSONAL_SCORERS``.
    """

    kind: str

    @property
    def n_items(self) -> int: ...

    def scores(self, histories: Histories) -> np.ndarray: ...

    def fold_in_items(self, seen: sp.csr_matrix, user_lists: Sequence[np.ndarray]) -> sp.csr_matrix:
        """Weights (len(user_lists), n_items) of recipes it was not fitted on, from their users' rows of
        ``seen`` (what it was fitted on): a user's score of one is its row summed over their recipes."""
        ...

    def hyper_parameters(self) -> dict[str, float | int]: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path, hyper_parameters: dict[str, Any]) -> Self:
        """The scorer ``save`` wrote under ``path``, built with ``hyper_parameters``."""
        ...


@dataclass(frozen=True)
class FoldedRecipes:
    """Recipes a model was not trained on, folded in from their users: columns a batch ranks after its own."""

    vectors: np.ndarray
    """(k, dim) float32, from ``Recommender.fold_in_items``."""
    bias: np.ndarray | None
    personal: sp.csr_matrix | None
    """(k, n_items) the personal scorer's weights (``PersonalScorer.fold_in_items``), or None: no scorer."""

    def rows(self, row: int) -> FoldedRecipes:
        """The one recipe at ``row``."""
        return FoldedRecipes(
            self.vectors[row : row + 1].copy(),
            None if self.bias is None else self.bias[row : row + 1],
            None if self.personal is None else self.personal[row : row + 1],
        )

    @classmethod
    def stacked(cls, parts: Sequence[FoldedRecipes]) -> FoldedRecipes:
        """The recipes of ``parts``, in order (all folded by one model)."""
        first = parts[0]
        return cls(
            np.vstack([part.vectors for part in parts]),
            None if first.bias is None else np.concatenate([part.bias for part in parts if part.bias is not None]),
            None
            if first.personal is None
            else sp.vstack([part.personal for part in parts if part.personal is not None], format="csr"),
        )

    def personal_scores(self, histories: Histories) -> np.ndarray:
        """(n, k) float32 personal scores of the recipes for users' recipes; -inf without weights (never picked)."""
        if self.personal is None:
            return np.full((len(histories), len(self.vectors)), -np.inf, dtype=np.float32)
        return np.asarray((histories.matrix() @ self.personal.T).toarray(), dtype=np.float32)


class Recommender(ABC):
    """A fitted model: user vectors, recipe vectors, recipe biases, id maps."""

    kind: ClassVar[str]
    """Stable name of the algorithm: ``popularity``, ``als`` or ``two_tower``."""

    supports_similarity: ClassVar[bool] = True
    """False where vectors carry no per-user signal (popularity)."""

    users: IdMap
    items: IdMap
    seen: sp.csr_matrix
    """users x recipes, 1 where the user interacted in the training data."""
    item_fsa: np.ndarray
    """(n_items,) float32 FSA health score (4 healthiest … 12), NaN where unknown.

    Saved with every model so the server filters on ``max_fsa_score`` without
    reading the data files.
    """

    epochs: int = 1
    """Passes over the data ``fit_epochs`` makes (1: the model is fitted in one go)."""

    personal: PersonalScorer | None = None
    """The personal scorer of the personal positions, or None (today's policy: ``personal_slots``)."""
    policy: PersonalPolicy | None = None
    """How ``personal`` enters the ranking; set with it by ``attach_personal``."""
    personal_slots: int = 0
    """Without a personal scorer: how many of the last top-10 positions go to the best recipes by ``affinity``.

    The policy before personal scorers, kept as the fallback of a model
    trained without one; 0 turns it off.
    """

    # -- fitting -----------------------------------------------------------------
    @abstractmethod
    def fit(self, data: Interactions) -> None:
        """Fit on ``data``; sets ``users``, ``items``, ``seen``, ``item_fsa`` and the vectors."""

    def fit_epochs(self, data: Interactions, export_every_epoch: bool = False) -> Iterator[int]:
        """Fit on ``data``, yielding the number of each finished epoch (``epochs`` of them).

        The trainer drives the loop (progress, per-epoch validation): with
        ``export_every_epoch`` the model is servable at every yield, otherwise
        only once the iterator is exhausted. A model fitted in one go has one epoch.
        """
        del export_every_epoch  # one epoch: the model is servable when it ends
        self.fit(data)
        yield 1

    def _set_data(self, data: Interactions) -> None:
        """The state every model keeps from its training data (call first in ``fit``)."""
        self.users = data.users
        self.items = data.items
        self.seen = data.matrix()
        if data.health is None:
            self.item_fsa = np.full(len(data.items), np.nan, dtype=np.float32)
        else:
            self.item_fsa = data.health.aligned(data.items)[0]

    def hyper_parameters(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same name.

        As scikit-learn's ``get_params``: each model keeps its arguments as
        attributes, so the list is written once, in ``__init__``'s signature.
        Saved as model metadata and passed back to ``__init__`` on load.
        """
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def use_device(self, device: str) -> None:
        """Run the model's own computations on ``device`` (the ``DEVICE`` setting).

        Models scored with numpy (popularity, ALS) always run on the CPU, so
        this is a no-op for them; torch models override it.
        """
        del device  # numpy runs on the CPU whatever the setting

    # -- vectors and scores ---------------------------------------------------------
    @property
    @abstractmethod
    def user_vectors(self) -> np.ndarray:
        """(n_users, dim) float32, row ``i`` for user index ``i``."""

    @property
    @abstractmethod
    def item_vectors(self) -> np.ndarray:
        """(n_items, dim) float32, row ``j`` for recipe index ``j``."""

    @property
    @abstractmethod
    def item_bias(self) -> np.ndarray | None:
        """(n_items,) float32 added to every score, or None."""

    @abstractmethod
    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """User vectors (len(histories), dim) from lists of recipe indices.

        This is how a user unknown at training time, or a known user with new
        interactions, is served without retraining.
        """

    @abstractmethod
    def fold_in_items(self, user_lists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Recipe vectors (len(user_lists), dim) and biases (or None) from lists of user indices.

        The item-side twin of ``fold_in``: a recipe the models were not
        trained on, once known users interacted with it, is placed where the
        model would have put it had it been trained with those users, so it
        is served (personal lists, similar recipes) without retraining.
        """

    @abstractmethod
    def score(self, user_vectors: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, n_items) of every recipe for each user vector; (n, len(columns)) of the recipes ``columns``."""

    @abstractmethod
    def affinity(self, user_vectors: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray | None:
        """The personal part of ``score`` (n, n_items), or None for a model without per-user signal."""

    index: RecipeIndex | None = None
    """The recipe index of candidate retrieval (``recipe_ml.retrieval``), saved with the model, or None."""

    def build_index(self, params: IndexParams | None = None) -> None:
        """Index the recipes ``[v, b]`` with the shipped backend (training time, so the index ships with the model)."""
        from recipe_ml.retrieval.usearch_index import USearchGraph  # the library loads only where an index is used

        self.index = RecipeIndex.build(item_rows(self.item_vectors, self.item_bias), USearchGraph, params)

    def history(self, user_index: int) -> np.ndarray:
        """Recipe indices the user interacted with in the training data."""
        start, end = self.seen.indptr[user_index], self.seen.indptr[user_index + 1]
        return np.asarray(self.seen.indices[start:end])

    def history_rows(self, histories: Sequence[np.ndarray]) -> Histories:
        """The histories (what ``rank_inputs`` reads) of lists of recipe indices."""
        return Histories.of(histories, len(self.items))

    # -- the personal positions --------------------------------------------------------
    def attach_personal(self, scorer: PersonalScorer, policy: PersonalPolicy) -> None:
        """Serve ``scorer``'s picks in the personal positions, as ``policy`` says (saved with the model)."""
        if scorer.n_items != len(self.items):
            raise ValueError(f"personal scorer has {scorer.n_items} recipes, the model {len(self.items)}")
        self.personal = scorer
        self.policy = policy

    @property
    def served_as(self) -> str:
        """The name of this model in logs and reports: the kind, ``+`` the personal scorer when it has one."""
        return self.kind if self.personal is None else f"{self.kind}+{self.personal.kind}"

    @property
    def personalization(self) -> str:
        """How the personal positions are chosen (``/api/health``): scorer and policy, or the fallback."""
        if self.personal is not None and self.policy is not None:
            p = self.policy
            return (
                f"{self.personal.kind} scorer, adaptive positions: round({p.intercept:g} + {p.per_doubling:g}"
                f" x log2(history length)) of the top 10, blend weight {p.blend_weight:g}"
            )
        if self.personal_slots > 0 and self.supports_similarity:
            return f"no personal scorer: fallback, {self.personal_slots} position(s) by the model's own affinity"
        if self.supports_similarity:
            return "no personal scorer: the model's own ranking"
        return "none: the same ranking for every user"

    def fold_in_recipes(self, user_lists: Sequence[np.ndarray]) -> FoldedRecipes:
        """New recipes placed for this model and its personal scorer alike, from lists of user indices."""
        vectors, bias = self.fold_in_items(user_lists)
        personal = None if self.personal is None else self.personal.fold_in_items(self.seen, user_lists)
        return FoldedRecipes(vectors, bias, personal)

    def rank_inputs(
        self,
        user_vectors: np.ndarray,
        histories: Histories,
        columns: np.ndarray | None = None,
        folded: FoldedRecipes | None = None,
    ) -> RankInputs:
        """Scores, ranking scores, personal scores and default personal positions for a batch.

        ``histories`` holds each user's recipes (training and
        live): the personal scorer reads them, and their length sets the
        adaptive number of personal positions. The one place that turns a
        model into the inputs of ``rank_rows``, for serving and evaluation
        alike; every array is new, the batch's own (``RankInputs``). ``columns``
        (sorted recipe indices, the candidates of a retrieval) makes every
        matrix (n, len(columns)); None scores every recipe. ``folded`` recipes
        (``fold_in_recipes``) are scored the same way, in columns after those.
        """
        scores = self.score(user_vectors, columns)
        if folded is not None:
            new = user_vectors @ folded.vectors.T
            scores = np.hstack([scores, new if folded.bias is None else new + folded.bias])
        n = scores.shape[0]
        if self.personal is not None and self.policy is not None:
            personal = self.personal.scores(histories)
            if columns is not None:
                personal = personal[:, columns]
            if folded is not None:
                personal = np.hstack([personal, folded.personal_scores(histories)])
            ranking = scores + np.float32(self.policy.blend_weight) * personal
            return RankInputs(scores, ranking, personal, self.policy.positions(histories.lengths()))
        affinity = self.affinity(user_vectors, columns)
        if affinity is not None and folded is not None:
            affinity = np.hstack([affinity, user_vectors @ folded.vectors.T])
        slots = np.full(n, self.personal_slots if affinity is not None else 0, dtype=np.int64)
        return RankInputs(scores, scores.copy(), affinity, slots)

    # -- persistence: a plain directory, so the BentoML store is only a wrapper ----------
    @abstractmethod
    def _save_arrays(self, path: Path) -> None:
        """Write the fitted state besides ids, ``seen`` and the personal scorer under ``path``."""

    @abstractmethod
    def _load_arrays(self, path: Path) -> None:
        """Read back what ``_save_arrays`` wrote."""

    def save(self, path: Path) -> None:
        """Write the model to the directory ``path`` (created if missing)."""
        path.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "hyper_parameters": self.hyper_parameters()}
        (path / META_FILE).write_text(json.dumps(meta, indent=2))
        np.save(path / "user_ids.npy", self.users.ids)
        np.save(path / "item_ids.npy", self.items.ids)
        np.save(path / "item_fsa.npy", self.item_fsa)
        sp.save_npz(path / "seen.npz", self.seen)
        self._save_arrays(path)
        if self.personal is not None and self.policy is not None:
            self.personal.save(path / PERSONAL_DIR)
            personal_meta = {
                "kind": self.personal.kind,
                "hyper_parameters": self.personal.hyper_parameters(),
                "policy": self.policy.as_dict(),
            }
            (path / PERSONAL_DIR / PERSONAL_META).write_text(json.dumps(personal_meta, indent=2))
        if self.index is not None:
            self.index.save(path / INDEX_DIR)

    @classmethod
    def load(cls, path: Path) -> Recommender:
        """Read a model saved by ``save``; the class is chosen by its ``kind``, the personal scorer by its own."""
        from recipe_ml.models import model_class, personal_scorer_class  # the registry imports this module

        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not a saved recommender (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        model = model_class(meta["kind"])(**meta["hyper_parameters"])
        model.users = IdMap(np.load(path / "user_ids.npy"))
        model.items = IdMap(np.load(path / "item_ids.npy"))
        model.item_fsa = np.load(path / "item_fsa.npy")
        model.seen = sp.load_npz(path / "seen.npz").tocsr()
        model._load_arrays(path)
        personal_meta = path / PERSONAL_DIR / PERSONAL_META
        if personal_meta.is_file():
            saved = json.loads(personal_meta.read_text())
            scorer_class = personal_scorer_class(saved.get("kind", SHIPPED_SCORER))
            scorer = scorer_class.load(path / PERSONAL_DIR, saved["hyper_parameters"])
            model.attach_personal(scorer, PersonalPolicy(**saved["policy"]))
        if (path / INDEX_DIR).is_dir():
            model.index = model._checked_index(path / INDEX_DIR)
        return model

    def _checked_index(self, path: Path) -> RecipeIndex | None:
        """The saved index if it fits this model's recipes, else None (logged): exact scoring, not wrong answers."""
        from recipe_ml.retrieval.usearch_index import USearchGraph

        try:
            return RecipeIndex.load(
                path,
                {USearchGraph.backend: USearchGraph},
                item_rows(self.item_vectors, self.item_bias),
                source=f"{self.kind} model",
            )
        except IndexMismatchError as exc:
            logger.warning("recipe index refused, serving by exact scoring: %s", exc)
            return None

"""The one interface every recommender implements (as ``implicit`` does).

A model maps users and recipes to vectors in one space; a score is a dot
product plus an optional per-recipe bias. That single shape lets the serving
layer batch any model as one matrix product, fold in users who appeared after
training, and find similar users, without knowing which model it holds.

Indices, not raw ids, cross this interface: ``IdMap`` (in ``recipe_ml.data``)
translates. Raw Allrecipes ids only appear at the edges.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import IdMap, Interactions

META_FILE = "recommender.json"


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

    @abstractmethod
    def fit(self, data: Interactions) -> None:
        """Fit on ``data``; sets ``users``, ``items``, ``seen``, ``item_fsa`` and the vectors."""

    def _set_data(self, data: Interactions) -> None:
        """The state every model keeps from its training data (call first in ``fit``)."""
        self.users = data.users
        self.items = data.items
        self.seen = data.matrix()
        if data.health is None:
            self.item_fsa = np.full(len(data.items), np.nan, dtype=np.float32)
        else:
            self.item_fsa = data.health.aligned(data.items)[0]

    runtime_arguments: ClassVar[frozenset[str]] = frozenset({"show_progress", "on_epoch"})
    """Constructor arguments that change how a fit runs, not the model (never saved)."""

    def hyper_parameters(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same name.

        As scikit-learn's ``get_params``: each model keeps its arguments as
        attributes, so the list is written once, in ``__init__``'s signature.
        Saved as model metadata and passed back to ``__init__`` on load.
        """
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self" and name not in self.runtime_arguments}

    @property
    @abstractmethod
    def user_vectors(self) -> np.ndarray:
        """(n_users, dim) float32, row ``i`` for user index ``i``."""

    @property
    @abstractmethod
    def item_vectors(self) -> np.ndarray:
        """(n_items, dim) float32, row ``j`` for recipe index ``j``."""

    @property
    def item_bias(self) -> np.ndarray | None:
        """(n_items,) float32 added to every score, or None."""
        return None

    @abstractmethod
    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """User vectors (len(histories), dim) from lists of recipe indices.

        This is how a user unknown at training time, or a known user with new
        interactions, is served without retraining.
        """

    personal_slots: int = 0
    """How many of the last top-10 positions go to the best recipes by ``affinity``.

    The ranking policy of ``recipe_ml.ranking.with_personal_slots``, applied
    alike in offline evaluation and in serving; 0 turns it off.
    """

    def score(self, user_vectors: np.ndarray) -> np.ndarray:
        """Scores (n, n_items) of every recipe for each user vector."""
        scores = user_vectors @ self.item_vectors.T
        bias = self.item_bias
        if bias is not None:
            scores += bias
        return np.asarray(scores, dtype=np.float32)

    def affinity(self, user_vectors: np.ndarray) -> np.ndarray | None:
        """The personal part of ``score`` (n, n_items): the dot product without the bias.

        None for a model without per-user signal (popularity). It ranks
        recipes by how much they suit the user rather than how popular they
        are, which is what the personal slots show.
        """
        return np.asarray(user_vectors @ self.item_vectors.T, dtype=np.float32)

    def use_device(self, device: str) -> None:
        """Run the model's own computations on ``device`` (the ``DEVICE`` setting).

        Models scored with numpy (popularity, ALS) always run on the CPU, so
        this is a no-op for them; torch models override it.
        """
        del device  # numpy runs on the CPU whatever the setting

    def history(self, user_index: int) -> np.ndarray:
        """Recipe indices the user interacted with in the training data."""
        start, end = self.seen.indptr[user_index], self.seen.indptr[user_index + 1]
        return np.asarray(self.seen.indices[start:end])

    # Persistence: a plain directory, so the BentoML store is only a wrapper.
    @abstractmethod
    def _save_arrays(self, path: Path) -> None:
        """Write the fitted state (besides ids and ``seen``) under ``path``."""

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

    @classmethod
    def load(cls, path: Path) -> Recommender:
        """Read a model saved by ``save``; the class is chosen by its ``kind``."""
        from recipe_ml.models import model_class  # the registry imports this module

        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: not a saved recommender (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        model_cls = model_class(meta["kind"])
        model = model_cls(**meta["hyper_parameters"])
        model.users = IdMap(np.load(path / "user_ids.npy"))
        model.items = IdMap(np.load(path / "item_ids.npy"))
        model.item_fsa = np.load(path / "item_fsa.npy")
        model.seen = sp.load_npz(path / "seen.npz").tocsr()
        model._load_arrays(path)
        return model

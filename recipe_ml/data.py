"""Interaction data: loading the CSV files, raw-id ↔ index maps, the user x recipe matrix.

Loading is strict: a missing file or a malformed line raises ``DataError``
naming the file and line, because a silently skipped line would change the
model without anyone noticing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
import scipy.sparse as sp

RATINGS_HEADER = ("user_id", "recipe_id", "rating")
HEALTH_HEADER = ("recipe_id", "fsa_score", "who_score")
HEALTH_FILE = "recipe_health.csv"
FSA_RANGE = (4.0, 12.0)
"""FSA score bounds: 4 is the healthiest, 12 the least healthy."""


class DataError(ValueError):
    """A data file is missing or malformed; the message names file and line."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class IdMap:
    """Sorted raw ids ↔ dense indices 0..n-1 (binary search, no dict)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        if self.ids.size and np.any(np.diff(self.ids) <= 0):
            raise ValueError("IdMap ids must be strictly increasing")

    def __len__(self) -> int:
        return int(self.ids.size)

    def __contains__(self, raw_id: object) -> bool:
        return isinstance(raw_id, (int, np.integer)) and self.index_of(int(raw_id)) is not None

    def index_of(self, raw_id: int) -> int | None:
        """Index of ``raw_id``, or None when it is unknown."""
        pos = int(np.searchsorted(self.ids, raw_id))
        return pos if pos < self.ids.size and self.ids[pos] == raw_id else None

    def indices(self, raw_ids: np.ndarray) -> np.ndarray:
        """Indices of ``raw_ids``, -1 for unknown ones."""
        raw = np.asarray(raw_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, raw)
        pos_clipped = np.minimum(pos, max(self.ids.size - 1, 0))
        known = (pos < self.ids.size) & (self.ids[pos_clipped] == raw) if self.ids.size else np.zeros(raw.shape, bool)
        return np.where(known, pos_clipped, -1)


@dataclass(frozen=True)
class Ratings:
    """Rows of a ratings file, raw ids (parallel arrays)."""

    user_id: np.ndarray
    recipe_id: np.ndarray
    rating: np.ndarray

    def __len__(self) -> int:
        return int(self.user_id.size)


@dataclass(frozen=True)
class RecipeHealth:
    """Health annotations of the recipes that have them (raw ids)."""

    recipe_id: np.ndarray
    fsa: np.ndarray
    who: np.ndarray

    def aligned(self, items: IdMap) -> tuple[np.ndarray, np.ndarray]:
        """(fsa, who) float32 per recipe index of ``items``, NaN where unknown."""
        fsa = np.full(len(items), np.nan, dtype=np.float32)
        who = np.full(len(items), np.nan, dtype=np.float32)
        idx = items.indices(self.recipe_id)
        known = idx >= 0
        fsa[idx[known]] = self.fsa[known]
        who[idx[known]] = self.who[known]
        return fsa, who


@dataclass(frozen=True)
class Interactions:
    """Positive interactions as parallel index arrays over fixed id maps."""

    users: IdMap
    items: IdMap
    user_index: np.ndarray
    item_index: np.ndarray
    rating: np.ndarray
    health: RecipeHealth | None = None
    """Recipe health scores; models save them aligned to ``items``."""

    def __len__(self) -> int:
        return int(self.user_index.size)

    def matrix(self) -> sp.csr_matrix:
        """users x recipes, 1.0 per (deduplicated) interaction."""
        data = np.ones(self.user_index.size, dtype=np.float32)
        m = sp.csr_matrix((data, (self.user_index, self.item_index)), shape=(len(self.users), len(self.items)))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


@dataclass(frozen=True)
class Histories:
    """Users' recipes, row after row: the ``indptr`` and ``indices`` of a users x recipes 0/1 CSR matrix.

    What a personal scorer reads. Not a ``scipy.sparse`` matrix because
    building one validates its arrays, which costs more than the personal
    scores themselves for the one to few users of a request. Each row's
    recipe indices are sorted and unique (a recipe listed twice is one recipe
    of the user), as a canonical CSR matrix's.
    """

    indptr: np.ndarray
    """(n + 1,) int64: row ``i``'s recipes are ``indices[indptr[i]:indptr[i + 1]]``."""
    indices: np.ndarray
    """int64 recipe indices."""
    n_items: int

    @classmethod
    def of(cls, rows: Sequence[np.ndarray], n_items: int) -> Histories:
        """The histories of lists of recipe indices."""
        unique = [np.unique(np.asarray(row, dtype=np.int64)) for row in rows]
        # Python's running sum: numpy's over a list of a few lengths costs more than the rest of this.
        indptr = np.fromiter(accumulate((row.size for row in unique), initial=0), dtype=np.int64, count=len(unique) + 1)
        indices = np.concatenate(unique) if unique else np.zeros(0, dtype=np.int64)
        return cls(indptr, indices, n_items)

    @classmethod
    def of_matrix(cls, matrix: sp.csr_matrix) -> Histories:
        """The rows of a users x recipes matrix: a stored value other than 0 is a recipe of the user."""
        binary = sp.csr_matrix(matrix, copy=True)
        binary.sum_duplicates()
        binary.eliminate_zeros()
        return cls(
            np.asarray(binary.indptr, dtype=np.int64), np.asarray(binary.indices, dtype=np.int64), matrix.shape[1]
        )

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        """(n,) recipes of each user."""
        return np.diff(self.indptr)

    def rows(self) -> list[np.ndarray]:
        """Each user's recipe indices."""
        return [self.indices[start:end] for start, end in zip(self.indptr[:-1], self.indptr[1:], strict=True)]

    def matrix(self) -> sp.csr_matrix:
        """The users x recipes 0/1 float32 matrix."""
        data = np.ones(self.indices.size, dtype=np.float32)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(len(self), self.n_items))


def _read_rows(path: Path, header: tuple[str, ...]) -> Iterable[tuple[int, list[str]]]:
    """(line number, fields) of each data line, after checking the header."""
    if not path.is_file():
        raise DataError(path, "file not found")
    with path.open(encoding="utf-8") as handle:
        first = handle.readline().strip()
        if tuple(first.split(",")) != header:
            raise DataError(path, f"expected header {','.join(header)!r}, got {first!r}", line=1)
        for line_no, line in enumerate(handle, start=2):
            text = line.strip()
            if not text:
                continue
            fields = text.split(",")
            if len(fields) != len(header):
                raise DataError(path, f"expected {len(header)} fields, got {len(fields)}: {text!r}", line=line_no)
            yield line_no, fields


def _parse_int(path: Path, line_no: int, name: str, text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(path, f"{name} is not an integer: {text!r}", line=line_no) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise DataError(path, f"{name} must be {bound}, got {value}", line=line_no)
    return value


def load_ratings(path: Path) -> Ratings:
    """Read a ``user_id,recipe_id,rating`` file (ratings 1-5)."""
    rows = [
        (
            _parse_int(path, n, "user_id", f[0], 0),
            _parse_int(path, n, "recipe_id", f[1], 0),
            _parse_int(path, n, "rating", f[2], 1, 5),
        )
        for n, f in _read_rows(path, RATINGS_HEADER)
    ]
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return Ratings(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].astype(np.int8))


def load_health(path: Path) -> RecipeHealth:
    """Read ``recipe_health.csv`` (FSA 4-12, WHO count >= 0)."""
    low, high = int(FSA_RANGE[0]), int(FSA_RANGE[1])
    rows = [
        (
            _parse_int(path, n, "recipe_id", f[0], 0),
            _parse_int(path, n, "fsa_score", f[1], low, high),
            _parse_int(path, n, "who_score", f[2], 0),
        )
        for n, f in _read_rows(path, HEALTH_HEADER)
    ]
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return RecipeHealth(table[:, 0].copy(), table[:, 1].astype(np.float32), table[:, 2].astype(np.float32))


def split_path(data_dir: Path, split: str) -> Path:
    """The ratings file of a split (``train`` -> ``train.csv``)."""
    return data_dir / f"{split}.csv"


def load_splits(data_dir: Path, splits: Sequence[str] = ("train", "validation")) -> dict[str, Interactions]:
    """Each split as ``Interactions`` over id maps shared by all of them.

    Shared maps let a model fitted on ``train`` be evaluated on ``validation``
    with the same indices. The health file is attached when present.
    """
    ratings = {name: load_ratings(split_path(data_dir, name)) for name in splits}
    health_path = data_dir / HEALTH_FILE
    return splits_of(ratings, load_health(health_path) if health_path.is_file() else None)


def splits_of(ratings: Mapping[str, Ratings], health: RecipeHealth | None) -> dict[str, Interactions]:
    """Each part of ``ratings`` as ``Interactions`` over id maps of every user and recipe of all parts."""
    users = IdMap(np.unique(np.concatenate([r.user_id for r in ratings.values()])))
    items = IdMap(np.unique(np.concatenate([r.recipe_id for r in ratings.values()])))
    return {
        name: Interactions(users, items, users.indices(r.user_id), items.indices(r.recipe_id), r.rating, health)
        for name, r in ratings.items()
    }


def ratings_of(part: Interactions) -> Ratings:
    """The rows of ``part`` in raw ids (what ``splits_of`` was given)."""
    return Ratings(part.users.ids[part.user_index], part.items.ids[part.item_index], part.rating)


def concat(parts: Sequence[Interactions]) -> Interactions:
    """One ``Interactions`` from parts that share id maps (e.g. train + validation)."""
    first = parts[0]
    if any(p.users is not first.users or p.items is not first.items for p in parts):
        raise ValueError("concat needs parts over the same id maps (load them with load_splits)")
    return Interactions(
        first.users,
        first.items,
        np.concatenate([p.user_index for p in parts]),
        np.concatenate([p.item_index for p in parts]),
        np.concatenate([p.rating for p in parts]),
        first.health,
    )


def sample_users(splits: dict[str, Interactions], n_users: int, seed: int) -> dict[str, Interactions]:
    """The same ``n_users`` users (seeded choice) in every split, maps re-indexed.

    Recipes are restricted to those the sampled users touched, so a sample
    trains as a small but complete model (used by tests and quick runs).
    """
    first = next(iter(splits.values()))
    if n_users >= len(first.users):
        return splits
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(first.users), size=n_users, replace=False))
    keep = {name: np.isin(part.user_index, chosen) for name, part in splits.items()}
    users = IdMap(first.users.ids[chosen])
    touched = np.unique(np.concatenate([part.item_index[keep[name]] for name, part in splits.items()]))
    items = IdMap(first.items.ids[touched])
    return {
        name: Interactions(
            users,
            items,
            users.indices(first.users.ids[part.user_index[keep[name]]]),
            items.indices(first.items.ids[part.item_index[keep[name]]]),
            part.rating[keep[name]],
            part.health,
        )
        for name, part in splits.items()
    }


def fingerprint(parts: Mapping[str, Ratings], health: RecipeHealth | None) -> str:
    """sha256 over every row of each part (its name, raw ids, rating) and the health scores: which data a model saw."""
    digest = hashlib.sha256()
    for name, rows in parts.items():
        digest.update(name.encode())
        for column in (rows.user_id, rows.recipe_id, rows.rating):
            digest.update(np.ascontiguousarray(column, dtype=np.int64).tobytes())
    if health is not None:
        for column in (health.recipe_id, health.fsa, health.who):
            digest.update(np.ascontiguousarray(column, dtype=np.float64).tobytes())
    return digest.hexdigest()

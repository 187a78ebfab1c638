"""The personal scorer: a strongly regularised item-item model (EASE, Steck 2019), kept sparse.

Why this one picks the personal positions: on this data a global popularity
ranking is as accurate as any model, so personal recipes have to be chosen by
something that ranks well *beside* popularity. The closed-form item-item
regression ``B = argmin ||X - XB||² + l2 ||B||², diag(B) = 0`` with a large
``l2`` scores a recipe by how often it is cooked together with the user's
recipes, shrunk hard towards zero where the evidence is thin. The offline
report compares it with the towers' dot product and ALS as the source of the
personal picks (``recipe_ml.evaluation.report``): it is the one that keeps accuracy while
covering the catalogue.

Why sparse: the dense solution is n_recipes² floats. Each recipe keeps its
``neighbours`` strongest weights (by magnitude, negative ones included: they
push co-cooked-against recipes down), so serving holds a few tens of MB and a
user's scores are the sum of the rows of their recipes: a gather, no solve,
and an exact fold-in for users with live interactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from recipe_ml.data import Histories

WEIGHTS_FILE = "ease_weights.npz"


class EASEScorer:
    """Item-item weights ``B`` (n_recipes x n_recipes, sparse): a user's scores are ``x_u @ B``."""

    kind = "ease"
    """Name of the personal scorer, the ``personalized_by`` of answers (``ease``)."""

    def __init__(self, l2: float = 5000.0, neighbours: int = 1000) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        self.l2 = l2
        self.neighbours = neighbours
        self.weights = sp.csr_matrix((0, 0), dtype=np.float32)

    # B is held as arrays rather than a scipy matrix: scipy keeps column
    # indices as int32 at least, while the catalogue's recipe indices fit in
    # int16, which takes a quarter off the scorer's memory, in every process
    # that serves it; the values stay float32, so the scores do not change.
    # A row is padded to the longest (every row keeps ``neighbours`` weights
    # but for a recipe with fewer nonzero ones) with weight 0 at column 0:
    # a recipe's weights are then one row of a 2-d array, gathered as a block
    # instead of an index of their own each, and adding +0.0 changes no score.
    _shape: tuple[int, int]
    _lengths: np.ndarray
    """(n_rows,) int64 weights of each row of ``B`` (the rest of the row is padding)."""
    _columns: np.ndarray
    """(n_rows, width) column of each weight."""
    _values: np.ndarray
    """(n_rows, width) float32 weights."""

    @property
    def weights(self) -> sp.csr_matrix:
        """``B`` as a scipy CSR matrix: a new one on each access (saving, inspection), not used to score."""
        stored = np.arange(self._columns.shape[1])[None, :] < self._lengths[:, None]
        indptr = np.concatenate([[0], np.cumsum(self._lengths)])
        columns = self._columns[stored].astype(np.int32)
        return sp.csr_matrix((self._values[stored], columns, indptr), shape=self._shape)

    @weights.setter
    def weights(self, matrix: sp.csr_matrix) -> None:
        csr = sp.csr_matrix(matrix)
        n_rows, n_cols = csr.shape
        self._shape = (n_rows, n_cols)
        self._lengths = np.diff(csr.indptr).astype(np.int64)
        width = int(self._lengths.max(initial=0))
        stored = np.arange(width)[None, :] < self._lengths[:, None]
        self._columns = np.zeros((n_rows, width), dtype=column_dtype(n_cols))
        self._columns[stored] = csr.indices
        self._values = np.zeros((n_rows, width), dtype=np.float32)
        self._values[stored] = csr.data

    def hyper_parameters(self) -> dict[str, float | int]:
        return {"l2": self.l2, "neighbours": self.neighbours}

    def fit(self, seen: sp.csr_matrix) -> None:
        """Solve EASE on the binary users x recipes matrix ``seen`` and keep each row's strongest weights."""
        binary = seen.astype(bool).astype(np.float32)
        gram = np.asarray((binary.T @ binary).toarray(), dtype=np.float32)
        n_items = gram.shape[0]
        gram[np.diag_indices(n_items)] += np.float32(self.l2)
        precision = spd_inverse(gram)
        del gram
        dense = precision / -np.diag(precision)  # B = I - P diag(P)^-1, off-diagonal part
        np.fill_diagonal(dense, 0.0)
        self.weights = sparsify_rows(dense, self.neighbours)

    def fold_in_items(self, seen: sp.csr_matrix, user_lists: Sequence[np.ndarray]) -> sp.csr_matrix:
        """Weights (len(user_lists), n_recipes) of recipes the scorer was not fitted on, from their users.

        A user's score of new recipe ``k`` is the sum of row ``k`` over the
        user's recipes (``histories @ weights.T``), as for a fitted recipe.
        The item-side twin of a user fold-in, and exact: with ``diag(B) = 0``
        each column of ``B`` is the ridge regression of its recipe's users on
        the other recipes, so a new recipe's column solves
        ``(XᵀX + l2 I) b = Xᵀx`` (``X`` = ``seen``, the matrix the scorer was
        fitted on; ``x`` its users). Solved by conjugate gradients on the
        sparse ``X``, without the dense inverse fitting took, and kept to its
        ``neighbours`` strongest weights as the fitted ones are. A recipe
        without users gets no weights.
        """
        binary = sp.csr_matrix(seen, dtype=np.float64)
        binary.data[:] = 1.0
        n_items = binary.shape[1]
        system = sla.LinearOperator(
            (n_items, n_items), matvec=lambda v: binary.T @ (binary @ v) + self.l2 * v, dtype=np.float64
        )
        diagonal = np.asarray(binary.sum(axis=0)).ravel() + self.l2
        jacobi = sla.LinearOperator((n_items, n_items), matvec=lambda v: v / diagonal, dtype=np.float64)
        rows = np.zeros((len(user_lists), n_items), dtype=np.float32)
        for row, users in enumerate(user_lists):
            users = np.unique(np.asarray(users, dtype=np.int64))
            if users.size == 0:
                continue
            shared = np.asarray(binary[users].sum(axis=0)).ravel()
            solution, info = sla.cg(system, shared, rtol=FOLD_IN_TOLERANCE, maxiter=FOLD_IN_MAX_ITERATIONS, M=jacobi)
            if info < 0:
                raise np.linalg.LinAlgError(f"conjugate gradients failed (info {info})")
            rows[row] = solution
        return sparsify_rows(rows, self.neighbours)

    @property
    def n_items(self) -> int:
        return self._shape[1]

    def scores(self, histories: Histories) -> np.ndarray:
        """(n, n_recipes) float32 scores of every recipe for each user of ``histories``.

        A gather, not a sparse product: the rows of ``B`` of each user's
        recipes are added into a dense float32 row with ``np.add.at``. The sums
        are the ones ``binary @ B`` computes (each recipe's weights added in
        the order of the user's recipes, from zero, in float32), so the scores
        are bit-identical to the sparse product, without its per-call work
        (index dtype checks, an intermediate sparse result, ``toarray``), which
        costs more than the arithmetic for the one to few users of a request.
        """
        n = len(histories)
        recipes = histories.indices
        users = np.repeat(np.arange(n), histories.lengths())
        out = np.zeros(n * self.n_items, dtype=np.float32)
        # (user, recipe) pairs in order, as many as keep the gathered weights under GATHER_BLOCK (at least one):
        # the additions into each score keep their order, and the temporaries stay small however long a
        # history is, so a server's memory does not follow the longest histories it happened to see.
        step = max(1, GATHER_BLOCK // max(self._columns.shape[1], 1))
        for first in range(0, recipes.size, step):
            pairs = slice(first, first + step)
            self._gather_into(out, users[pairs], recipes[pairs])
        return out.reshape(n, self.n_items)

    def _gather_into(self, out: np.ndarray, users: np.ndarray, recipes: np.ndarray) -> None:
        """Add the rows of ``B`` of ``recipes`` into ``out`` (flat, users x recipes), pair by pair in order."""
        positions = self._columns[recipes] + (users * self.n_items)[:, None]
        np.add.at(out, positions.ravel(), self._values[recipes].ravel())

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        sp.save_npz(path / WEIGHTS_FILE, self.weights)

    @classmethod
    def load(cls, path: Path, hyper_parameters: dict[str, Any]) -> EASEScorer:
        scorer = cls(**hyper_parameters)
        scorer.weights = sp.load_npz(path / WEIGHTS_FILE)
        return scorer


FOLD_IN_TOLERANCE = 1e-6
"""Relative residual at which a new recipe's weights are solved: far below the float32 they are served in."""
FOLD_IN_MAX_ITERATIONS = 200
"""Conjugate-gradient steps at most (``l2`` keeps the system well conditioned: it takes a few tens)."""

GATHER_BLOCK = 1 << 16
"""Weights gathered at a time when scoring: bounds the temporary index arrays (a few hundred KB each)."""


def column_dtype(n_columns: int) -> type[np.signedinteger]:
    """The smallest signed integer type that holds every column index of ``n_columns`` columns (int16 or int32)."""
    return np.int16 if n_columns <= np.iinfo(np.int16).max + 1 else np.int32


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix by Cholesky (half the work of a general inverse)."""
    from scipy.linalg import lapack

    factor, info = lapack.spotrf(matrix, lower=True, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation failed (LAPACK info {info})")
    inverse, info = lapack.spotri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky inverse failed (LAPACK info {info})")
    lower = np.tril(inverse)
    full: np.ndarray = lower + np.tril(lower, -1).T
    return full


SPARSIFY_BLOCK = 1024
"""Rows sparsified at a time: bounds the temporary index arrays, not the result."""


def sparsify_rows(dense: np.ndarray, keep: int) -> sp.csr_matrix:
    """CSR with the ``keep`` largest-magnitude entries of each row of ``dense`` (zeros dropped)."""
    n_rows, n_cols = dense.shape
    keep = min(keep, n_cols)
    columns = np.empty((n_rows, keep), dtype=np.int32)
    values = np.empty((n_rows, keep), dtype=np.float32)
    for start in range(0, n_rows, SPARSIFY_BLOCK):
        block = dense[start : start + SPARSIFY_BLOCK]
        top = np.argpartition(-np.abs(block), keep - 1, axis=1)[:, :keep]
        columns[start : start + block.shape[0]] = top
        values[start : start + block.shape[0]] = np.take_along_axis(block, top, axis=1)
    indptr = np.arange(0, n_rows * keep + 1, keep)
    matrix = sp.csr_matrix((values.ravel(), columns.ravel(), indptr), shape=(n_rows, n_cols))
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix

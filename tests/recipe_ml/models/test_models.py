"""The three recommenders on a real 300-user slice: shapes, fold-in, determinism."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recipe_ml.config import DATA_DIR
from recipe_ml.data import Histories, IdMap, Interactions, load_health
from recipe_ml.evaluation.protocol import rank_users
from recipe_ml.models import KINDS, ease, model_class
from recipe_ml.models.als import ALSRecommender
from recipe_ml.models.base import Recommender
from recipe_ml.models.ease import EASEScorer, column_dtype
from recipe_ml.models.popularity import PopularityRecommender, popularity_prior
from recipe_ml.models.two_tower import TwoTowerRecommender
from recipe_ml.models.vectors import VectorRecommender
from recipe_ml.ranking import PersonalPolicy

SMALL = {"popularity": {}, "als": {"factors": 16, "iterations": 5}, "two_tower": {"epochs": 2}}


def fit(kind: str, data: Interactions, **overrides: object) -> Recommender:
    model = model_class(kind)(**{**SMALL[kind], **overrides})
    model.fit(data)
    return model


@pytest.fixture(scope="module")
def fitted(small_splits: dict[str, Interactions]) -> dict[str, Recommender]:
    return {kind: fit(kind, small_splits["train"]) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_vectors_and_scores_have_the_interface_shapes(kind: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[kind]
    n_users, n_items = len(model.users), len(model.items)
    assert model.user_vectors.shape[0] == n_users and model.item_vectors.shape[0] == n_items
    assert model.user_vectors.dtype == np.float32 and model.item_vectors.dtype == np.float32
    scores = model.score(model.user_vectors[:7])
    assert scores.shape == (7, n_items) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert model.seen.shape == (n_users, n_items)


@pytest.mark.parametrize("kind", KINDS)
def test_item_fsa_comes_from_the_health_file(kind: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[kind]
    health = load_health(DATA_DIR / "recipe_health.csv")
    expected = dict(zip(health.recipe_id.tolist(), health.fsa.tolist(), strict=True))
    assert model.item_fsa.dtype == np.float32 and model.item_fsa.shape == (len(model.items),)
    for index, raw in enumerate(model.items.ids.tolist()):
        value = model.item_fsa[index]
        assert (np.isnan(value) and raw not in expected) or value == expected[raw]
    assert 0 < np.isnan(model.item_fsa).sum() < len(model.items)


def test_popularity_prior_counts_five_star_ratings_and_breaks_ties_by_count() -> None:
    items = IdMap(np.array([10, 20, 30]))
    # recipe 0: two 5-stars; recipe 1: one 5-star + three others; recipe 2: one 5-star.
    data = Interactions(
        IdMap(np.arange(5)),
        items,
        user_index=np.array([0, 1, 0, 1, 2, 3, 4]),
        item_index=np.array([0, 0, 1, 1, 1, 1, 2]),
        rating=np.array([5, 5, 5, 4, 1, 3, 5], dtype=np.int8),
    )

    five = popularity_prior(data)
    count = popularity_prior(data, "count")

    np.testing.assert_allclose(count, np.log1p([2, 4, 1]), rtol=1e-6)
    np.testing.assert_allclose(five, np.log1p([2, 1, 1]) + 1e-3 * np.log1p([2, 4, 1]), rtol=1e-6)
    assert np.argsort(-five).tolist() == [0, 1, 2] and five.dtype == np.float32
    with pytest.raises(ValueError, match="unknown popularity weighting 'mean'; known: count, five_star"):
        popularity_prior(data, "mean")
    with pytest.raises(ValueError, match="unknown popularity weighting 'mean'"):
        PopularityRecommender(weighting="mean")


def test_popularity_ranks_by_interaction_count(small_splits: dict[str, Interactions]) -> None:
    model = fit("popularity", small_splits["train"], weighting="count")
    counts = np.asarray(model.seen.sum(axis=0)).ravel()
    order = np.argsort(-model.score(np.ones((1, 1), np.float32))[0], kind="stable")
    assert (np.diff(counts[order]) <= 0).all()
    np.testing.assert_array_equal(model.fold_in([np.array([1, 2]), np.array([], np.int64)]), np.ones((2, 1)))
    assert not PopularityRecommender.supports_similarity
    assert model.affinity(model.user_vectors[:3]) is None and model.personal_slots == 0


def test_shipped_popularity_ranks_by_the_five_star_prior(
    fitted: dict[str, Recommender], small_splits: dict[str, Interactions]
) -> None:
    scores = fitted["popularity"].score(np.ones((1, 1), np.float32))[0]
    prior = popularity_prior(small_splits["train"])
    np.testing.assert_allclose(scores, prior / prior.max(), rtol=1e-6)


def test_two_tower_bias_is_the_popularity_prior_and_affinity_is_the_rest(
    fitted: dict[str, Recommender], small_splits: dict[str, Interactions]
) -> None:
    model = fitted["two_tower"]
    assert model.item_bias is not None
    np.testing.assert_array_equal(model.item_bias, popularity_prior(small_splits["train"]))
    vectors = model.user_vectors[:5]
    affinity = model.affinity(vectors)
    assert affinity is not None
    np.testing.assert_allclose(affinity + model.item_bias, model.score(vectors), rtol=1e-5, atol=1e-6)
    assert model.personal_slots == 1 and model.hyper_parameters()["personal_slots"] == 1


def test_two_tower_affinity_weight_scales_user_vectors_not_their_ranking(
    small_splits: dict[str, Interactions], fitted: dict[str, Recommender]
) -> None:
    doubled = fit("two_tower", small_splits["train"], affinity_weight=0.1)
    base = fitted["two_tower"]
    np.testing.assert_allclose(doubled.user_vectors, 2 * base.user_vectors, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="affinity_weight must be > 0"):
        TwoTowerRecommender(affinity_weight=0.0)


def test_als_fold_in_equals_implicit_recalculate_user(fitted: dict[str, Recommender]) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    model = fitted["als"]
    assert isinstance(model, ALSRecommender)
    reference = AlternatingLeastSquares(factors=model.factors, regularization=model.regularization, alpha=model.alpha)
    reference.item_factors = model.item_vectors
    histories = [model.history(u) for u in range(5)] + [np.array([0, 3, 3, 9])]
    for history in histories:
        row = sp.csr_matrix(
            (np.ones(len(np.unique(history)), np.float32), np.unique(history), [0, len(np.unique(history))]),
            shape=(1, len(model.items)),
        )
        np.testing.assert_allclose(
            model.fold_in([history])[0], reference.recalculate_user(0, row), rtol=1e-3, atol=1e-4
        )


def test_als_fold_in_of_own_history_ranks_like_the_trained_vector(fitted: dict[str, Recommender]) -> None:
    model = fitted["als"]
    users = np.arange(20)
    folded = model.fold_in([model.history(int(u)) for u in users])
    cosine = (folded * model.user_vectors[users]).sum(1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(model.user_vectors[users], axis=1)
    )
    assert (cosine > 0.9).all()


def test_two_tower_fold_in_of_own_history_is_the_user_vector(fitted: dict[str, Recommender]) -> None:
    model = fitted["two_tower"]
    users = np.arange(len(model.users))
    folded = model.fold_in([model.history(int(u)) for u in users])
    np.testing.assert_allclose(folded, model.user_vectors, rtol=1e-5, atol=1e-6)


def test_a_recipe_folded_into_the_two_tower_gets_the_bias_of_trained_recipes_with_as_many_users(
    fitted: dict[str, Recommender],
) -> None:
    """The bias is the popularity prior: a recipe folded in from more users is more popular."""
    model = fitted["two_tower"]
    assert model.item_bias is not None
    columns = model.seen.tocsc()
    users = np.diff(columns.indptr)
    few = int(np.flatnonzero(users == 3)[0])
    many = int(np.argmax(users))

    _, bias = model.fold_in_items([columns[:, few].indices, columns[:, many].indices])

    assert bias is not None
    with_three = model.item_bias[users == 3]
    assert with_three.min() <= bias[0] <= with_three.max()
    assert bias[1] > bias[0] and bias[1] >= np.median(model.item_bias[users >= np.sort(users)[-25]])


@pytest.mark.parametrize("kind", ["als", "two_tower"])
def test_fold_in_of_an_empty_history_is_a_zero_vector(kind: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[kind]
    out = model.fold_in([np.array([], dtype=np.int64), model.history(0)])
    assert not out[0].any() and out[1].any()


@pytest.mark.parametrize("kind", ["als", "two_tower"])
def test_fitting_twice_with_one_seed_gives_the_same_model(
    kind: str, small_splits: dict[str, Interactions], fitted: dict[str, Recommender]
) -> None:
    again = fit(kind, small_splits["train"])
    np.testing.assert_array_equal(again.item_vectors, fitted[kind].item_vectors)
    np.testing.assert_array_equal(again.user_vectors, fitted[kind].user_vectors)
    other_seed = fit(kind, small_splits["train"], seed=1)
    assert not np.array_equal(other_seed.item_vectors, fitted[kind].item_vectors)


@pytest.mark.parametrize("kind", KINDS)
def test_ranking_excludes_seen_recipes(kind: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[kind]
    users = np.arange(30)
    ranked = rank_users(model, users, 10, model.seen)
    for row, user in enumerate(users):
        assert not set(ranked[row]) & set(model.history(int(user)).tolist())
        assert len(set(ranked[row])) == 10


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'svd'; known kinds: popularity, als, two_tower"):
        model_class("svd")


@pytest.mark.integration
def test_no_model_class_imports_torch() -> None:
    """Torch comes in only to train a Two-Tower or fold in on CUDA (``test_user_tower`` covers loading)."""
    code = (
        "import sys\n"
        "from recipe_ml.models import KINDS, model_class\n"
        "for kind in KINDS: model_class(kind)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(DATA_DIR.parent.parent))


@pytest.mark.parametrize("kind", KINDS)
def test_on_the_cpu_device_fold_in_is_unchanged(kind: str, fitted: dict[str, Recommender]) -> None:
    model = fitted[kind]
    history = [model.history(0)]
    before = model.fold_in(history)
    model.use_device("cpu")
    np.testing.assert_allclose(model.fold_in(history), before, rtol=1e-6)


def test_a_cuda_device_without_cuda_is_a_clear_error(fitted: dict[str, Recommender]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="DEVICE='cuda' but torch sees no CUDA device"):
        fitted["two_tower"].use_device("cuda")


@pytest.mark.parametrize("kind", KINDS)
def test_hyper_parameters_are_the_constructor_arguments(kind: str, fitted: dict[str, Recommender]) -> None:
    params = fitted[kind].hyper_parameters()
    assert type(fitted[kind])(**params).hyper_parameters() == params


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_the_same_scores(kind: str, fitted: dict[str, Recommender], tmp_path: Path) -> None:
    model = fitted[kind]
    model.save(tmp_path / kind)
    loaded = Recommender.load(tmp_path / kind)
    np.testing.assert_array_equal(loaded.score(loaded.user_vectors[:5]), model.score(model.user_vectors[:5]))
    assert loaded.personal is None and loaded.served_as == kind


def test_ease_solves_the_closed_form_and_keeps_the_strongest_weights() -> None:
    rng = np.random.default_rng(0)
    seen = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    gram = (seen.T @ seen).toarray().astype(np.float64) + 7.0 * np.eye(12)
    precision = np.linalg.inv(gram)
    expected = precision / -np.diag(precision)
    np.fill_diagonal(expected, 0.0)

    full = EASEScorer(l2=7.0, neighbours=12)
    full.fit(seen)
    np.testing.assert_allclose(full.weights.toarray(), expected, rtol=1e-4, atol=1e-6)
    scores = full.scores(Histories.of_matrix(seen[:3]))
    np.testing.assert_allclose(scores, seen[:3].toarray() @ expected, rtol=1e-4, atol=1e-6)

    sparse = EASEScorer(l2=7.0, neighbours=3)
    sparse.fit(seen)
    kept = sparse.weights.toarray()
    assert (np.count_nonzero(kept, axis=1) <= 3).all()
    for row in range(12):
        strongest = np.sort(np.abs(expected[row]))[-3:]
        np.testing.assert_allclose(np.sort(np.abs(kept[row][kept[row] != 0])), strongest[strongest > 0], rtol=1e-4)


def test_ease_folds_a_new_recipe_in_as_the_column_fitting_with_it_would_give() -> None:
    """A recipe left out of the fit, folded in from its users, gets the weights the fit with it gives it."""
    rng = np.random.default_rng(3)
    seen = sp.csr_matrix((rng.random((80, 20)) < 0.3).astype(np.float32))
    with_it = EASEScorer(l2=5.0, neighbours=20)
    with_it.fit(seen)
    others = np.arange(1, 20)
    without = EASEScorer(l2=5.0, neighbours=19)
    without.fit(seen[:, others])
    users = seen.tocsc()[:, 0].indices

    weights = without.fold_in_items(seen[:, others].tocsr(), [users, np.zeros(0, dtype=np.int64)])

    assert weights.shape == (2, 19) and weights[1].nnz == 0  # no users: no weights
    np.testing.assert_allclose(weights[0].toarray()[0], with_it.weights.toarray()[others, 0], rtol=1e-4, atol=1e-7)
    kept = EASEScorer(l2=5.0, neighbours=4).fold_in_items(seen[:, others].tocsr(), [users])
    assert kept.nnz == 4  # the strongest, as a fitted recipe keeps


def test_ease_scores_are_exactly_the_sparse_product_of_the_binary_histories() -> None:
    rng = np.random.default_rng(1)
    scorer = EASEScorer(l2=3.0, neighbours=6)
    scorer.fit(sp.csr_matrix((rng.random((60, 30)) < 0.25).astype(np.float32)))
    # Counts above 1 (binary: 1), a stored zero (nothing), an empty row, unsorted and duplicate entries.
    histories = sp.csr_matrix(
        (
            np.array([2.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float32),
            np.array([4, 17, 9, 29, 3, 0, 3]),
            np.array([0, 3, 3, 7]),
        ),
        shape=(3, 30),
    )
    expected = (histories.astype(bool).astype(np.float32) @ scorer.weights).toarray()
    scores = scorer.scores(Histories.of_matrix(histories))
    assert scores.dtype == np.float32 and scores.shape == (3, 30)
    np.testing.assert_array_equal(scores, expected)
    assert not scores[1].any()


@pytest.mark.parametrize("block", [1, 5, 13, 10_000])
def test_ease_scores_gathered_in_blocks_are_the_sparse_product(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long histories are gathered a block of weights at a time (bounded temporaries), into the same sums."""
    rng = np.random.default_rng(2)
    scorer = EASEScorer(l2=3.0, neighbours=6)
    scorer.fit(sp.csr_matrix((rng.random((80, 40)) < 0.3).astype(np.float32)))
    histories = sp.csr_matrix((rng.random((4, 40)) < 0.6).astype(np.float32))
    monkeypatch.setattr(ease, "GATHER_BLOCK", block)
    expected = (histories @ scorer.weights).toarray()
    np.testing.assert_array_equal(scorer.scores(Histories.of_matrix(histories)), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_scores_are_the_product_with_the_current_item_vectors(kind: str, fitted: dict[str, Recommender]) -> None:
    model = copy.deepcopy(fitted[kind])
    assert isinstance(model, VectorRecommender)
    users = model.user_vectors[:5]
    bias = 0.0 if model.item_bias is None else model.item_bias
    np.testing.assert_array_equal(model.score(users), np.asarray(users @ model.item_vectors.T + bias, np.float32))
    model._item_vectors = model.item_vectors * 2.0  # new vectors: the cached transpose must follow
    np.testing.assert_array_equal(model.score(users), np.asarray(users @ model.item_vectors.T + bias, np.float32))


def test_ease_rows_of_unequal_lengths_are_padded_without_changing_weights_or_scores() -> None:
    """Rows are held padded to the longest (weight 0 at column 0): the weights read back as set, the scores as
    the sparse product gives them, negative and zero sums included."""
    weights = sp.csr_matrix(
        (
            np.array([0.5, -0.25, 1.5, -1.5, -0.0, 2.0], dtype=np.float32),
            np.array([1, 0, 2, 3, 1, 3]),
            np.array([0, 0, 1, 5, 6]),  # rows of 0, 1, 4 and 1 weights
        ),
        shape=(4, 4),
    )
    scorer = EASEScorer()
    scorer.weights = weights
    back = scorer.weights
    assert back.nnz == weights.nnz and (back != weights).nnz == 0
    np.testing.assert_array_equal(back.indptr, weights.indptr)
    histories = Histories.of([np.array([0, 1, 2, 3]), np.array([1, 2]), np.array([0]), np.array([3, 2])], 4)
    expected = (histories.matrix() @ weights).toarray()
    scores = scorer.scores(histories)
    np.testing.assert_array_equal(scores, expected)
    assert not np.signbit(scores[expected == 0]).any()  # the padding's +0.0 leaves no -0.0


def test_ease_column_indices_take_the_smallest_type_that_holds_the_catalogue() -> None:
    assert column_dtype(32_768) is np.int16  # indices up to 32,767
    assert column_dtype(32_769) is np.int32
    wide = EASEScorer()
    wide.weights = sp.csr_matrix(([0.5], ([0], [40_000])), shape=(1, 40_001), dtype=np.float32)
    assert wide.weights[0, 40_000] == np.float32(0.5)
    np.testing.assert_array_equal(
        wide.scores(Histories.of([np.zeros(1, dtype=np.int64)], 40_001)), wide.weights.toarray()
    )


def test_ease_rejects_bad_hyper_parameters() -> None:
    with pytest.raises(ValueError, match="l2 must be > 0"):
        EASEScorer(l2=0.0)
    with pytest.raises(ValueError, match="neighbours must be >= 1"):
        EASEScorer(neighbours=0)


def test_a_model_with_a_personal_scorer_saves_it_and_ranks_with_it(
    fitted: dict[str, Recommender], small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    model = copy.copy(fitted["two_tower"])
    scorer = EASEScorer(neighbours=50)
    scorer.fit(small_splits["train"].matrix())
    policy = PersonalPolicy(blend_weight=300.0, intercept=1.0, per_doubling=1.0)
    model.attach_personal(scorer, policy)
    assert model.served_as == "two_tower+ease" and "ease scorer" in model.personalization

    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")

    saved = tmp_path / "m" / "personal" / "personal.json"
    meta = json.loads(saved.read_text())
    assert meta.pop("kind") == "ease"
    saved.write_text(json.dumps(meta))  # as saved before scorers were named: EASE, the only one then
    assert isinstance(Recommender.load(tmp_path / "m").personal, EASEScorer)
    assert loaded.policy == policy and isinstance(loaded.personal, EASEScorer)
    assert (loaded.personal.weights != scorer.weights).nnz == 0
    histories = loaded.seen[:4]
    inputs = loaded.rank_inputs(loaded.user_vectors[:4], Histories.of_matrix(histories))
    assert inputs.personal is not None
    np.testing.assert_allclose(inputs.ranking, inputs.scores + 300.0 * inputs.personal, rtol=1e-5, atol=1e-5)
    assert inputs.positions.tolist() == policy.positions(np.diff(histories.indptr)).tolist()
    with pytest.raises(ValueError, match="personal scorer has 3 recipes"):
        _attach_wrong_size(model, policy)


def _attach_wrong_size(model: Recommender, policy: PersonalPolicy) -> None:
    small = EASEScorer()
    small.weights = sp.csr_matrix((3, 3), dtype=np.float32)
    model.attach_personal(small, policy)


def test_a_model_without_a_personal_scorer_falls_back_to_its_affinity_slots(fitted: dict[str, Recommender]) -> None:
    model = fitted["two_tower"]
    inputs = model.rank_inputs(model.user_vectors[:3], Histories.of_matrix(model.seen[:3]))
    assert inputs.personal is not None and inputs.positions.tolist() == [1, 1, 1]
    assert "fallback" in model.personalization and model.served_as == "two_tower"
    popular = fitted["popularity"]
    popularity = popular.rank_inputs(popular.user_vectors[:2], Histories.of_matrix(popular.seen[:2]))
    assert popularity.personal is None and "same ranking" in fitted["popularity"].personalization

"""Loading the data files: real files load, broken ones name file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recipe_ml.config import DATA_DIR
from recipe_ml.data import (
    DataError,
    Histories,
    IdMap,
    Ratings,
    concat,
    fingerprint,
    load_health,
    load_ratings,
    load_splits,
    ratings_of,
    sample_users,
    splits_of,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A tiny data directory: 3 users, 4 recipes, one recipe only in validation."""
    write(tmp_path / "train.csv", "user_id,recipe_id,rating\n1,10,5\n1,20,4\n2,20,3\n3,30,5\n")
    write(tmp_path / "validation.csv", "user_id,recipe_id,rating\n1,30,4\n2,40,5\n")
    write(tmp_path / "recipe_health.csv", "recipe_id,fsa_score,who_score\n20,9,2\n40,4,7\n99,12,0\n")
    return tmp_path


def test_real_training_data_loads() -> None:
    ratings = load_ratings(DATA_DIR / "train.csv")
    assert len(ratings) == 80_540
    assert ratings.rating.min() >= 1 and ratings.rating.max() <= 5
    health = load_health(DATA_DIR / "recipe_health.csv")
    assert len(health.recipe_id) == 3_879


def test_load_splits_share_id_maps_over_all_splits(data_dir: Path) -> None:
    splits = load_splits(data_dir)
    train, validation = splits["train"], splits["validation"]
    assert train.users is validation.users and train.items is validation.items
    assert train.items.ids.tolist() == [10, 20, 30, 40]
    assert validation.items.ids[validation.item_index].tolist() == [30, 40]
    assert train.matrix().shape == (3, 4)


def test_concat_merges_splits(data_dir: Path) -> None:
    data = concat(list(load_splits(data_dir).values()))
    assert len(data) == 6
    assert data.matrix().sum() == 6


def test_health_is_aligned_to_recipe_indices_with_nan_for_unknown(data_dir: Path) -> None:
    data = load_splits(data_dir)["train"]
    assert data.health is not None
    fsa, who = data.health.aligned(data.items)
    np.testing.assert_array_equal(fsa, [np.nan, 9.0, np.nan, 4.0])
    np.testing.assert_array_equal(who, [np.nan, 2.0, np.nan, 7.0])


def test_concat_rejects_parts_over_different_maps(data_dir: Path) -> None:
    first = load_splits(data_dir)["train"]
    second = load_splits(data_dir)["train"]
    with pytest.raises(ValueError, match="same id maps"):
        concat([first, second])


def test_sample_users_is_seeded_and_consistent_across_splits() -> None:
    splits = load_splits(DATA_DIR)
    a = sample_users(splits, 50, seed=3)
    b = sample_users(splits, 50, seed=3)
    c = sample_users(splits, 50, seed=4)
    np.testing.assert_array_equal(a["train"].users.ids, b["train"].users.ids)
    assert not np.array_equal(a["train"].users.ids, c["train"].users.ids)
    assert len(a["train"].users) == 50 and a["validation"].users is a["train"].users
    # every kept row maps back to the raw (user, recipe) pair it had
    raw_pairs = set(
        zip(
            splits["train"].users.ids[splits["train"].user_index],
            splits["train"].items.ids[splits["train"].item_index],
            strict=True,
        )
    )
    sampled = a["train"]
    pairs = zip(sampled.users.ids[sampled.user_index], sampled.items.ids[sampled.item_index], strict=True)
    assert all(p in raw_pairs for p in pairs)
    assert (sampled.item_index >= 0).all() and (a["validation"].item_index >= 0).all()


def test_id_map_unknown_ids() -> None:
    ids = IdMap(np.array([3, 5, 9]))
    assert ids.indices(np.array([5, 4, 9, 100])).tolist() == [1, -1, 2, -1]
    assert ids.index_of(4) is None and 9 in ids


def test_splits_of_maps_every_user_and_recipe_of_all_parts(data_dir: Path) -> None:
    shipped = load_splits(data_dir)
    live = Ratings(np.array([1, 77]), np.array([99, 10]), np.array([5, 3], dtype=np.int8))
    parts = splits_of({"train": ratings_of(shipped["train"]), "live": live}, shipped["train"].health)
    assert parts["train"].users.ids.tolist() == [1, 2, 3, 77]  # user 2's validation row is not a part here
    assert parts["train"].items.ids.tolist() == [10, 20, 30, 99]
    assert parts["live"].items.ids[parts["live"].item_index].tolist() == [99, 10]
    assert ratings_of(parts["train"]).rating.tolist() == shipped["train"].rating.tolist()


def test_fingerprint_changes_with_any_row_or_part_name(data_dir: Path) -> None:
    splits = load_splits(data_dir)
    parts = {name: ratings_of(part) for name, part in splits.items()}
    health = splits["train"].health
    before = fingerprint(parts, health)
    assert before == fingerprint({name: ratings_of(part) for name, part in load_splits(data_dir).items()}, health)
    changed = Ratings(parts["train"].user_id, parts["train"].recipe_id, parts["train"].rating[::-1].copy())
    assert fingerprint({**parts, "train": changed}, health) != before
    assert fingerprint({"train": parts["train"], "other": parts["validation"]}, health) != before
    assert fingerprint(parts, None) != before


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("user,recipe,rating\n1,2,3\n", 1, "expected header"),
        ("user_id,recipe_id,rating\n1,2,3\n1,2\n", 3, "expected 3 fields, got 2"),
        ("user_id,recipe_id,rating\n1,2,3\n4,x,5\n", 3, "recipe_id is not an integer: 'x'"),
        ("user_id,recipe_id,rating\n1,2,6\n", 2, "rating must be between 1 and 5, got 6"),
        ("user_id,recipe_id,rating\n-1,2,3\n", 2, "user_id must be >= 0, got -1"),
    ],
)
def test_malformed_ratings_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "train.csv", text)
    with pytest.raises(DataError, match=message) as info:
        load_ratings(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert info.value.line == line and info.value.path == path


def test_malformed_health_score_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "recipe_health.csv", "recipe_id,fsa_score,who_score\n1,9,2\n2,13,1\n")
    with pytest.raises(DataError, match=r"recipe_health.csv:3: fsa_score must be between 4 and 12, got 13"):
        load_health(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"validation.csv: file not found"):
        load_splits(tmp_path, ("validation",))


def test_histories_of_lists_are_sorted_unique_rows_of_the_0_1_matrix() -> None:
    histories = Histories.of([np.array([7, 2, 7]), np.zeros(0, dtype=np.int64), np.array([3])], 10)
    assert len(histories) == 3 and histories.lengths().tolist() == [2, 0, 1]
    assert [row.tolist() for row in histories.rows()] == [[2, 7], [], [3]]
    expected = np.zeros((3, 10), dtype=np.float32)
    expected[0, [2, 7]] = expected[2, 3] = 1.0
    np.testing.assert_array_equal(histories.matrix().toarray(), expected)
    assert Histories.of([], 10).lengths().tolist() == []


def test_histories_of_a_matrix_keep_the_stored_values_other_than_zero_once() -> None:
    # Counts above 1 (one recipe), a stored zero (no recipe), an empty row, unsorted and duplicate entries.
    matrix = sp.csr_matrix(
        (
            np.array([2.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float32),
            np.array([4, 17, 9, 29, 3, 0, 3]),
            np.array([0, 3, 3, 7]),
        ),
        shape=(3, 30),
    )
    histories = Histories.of_matrix(matrix)
    assert [row.tolist() for row in histories.rows()] == [[4, 17], [], [0, 3, 29]]
    assert histories.n_items == 30 and histories.indices.dtype == np.int64
    assert matrix.nnz == 7  # the caller's matrix is left as it was

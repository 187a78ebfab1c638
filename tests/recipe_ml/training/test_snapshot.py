"""A retrain's data: the shipped splits plus the live interactions, and what reading them says."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.net import free_port
from recipe_ml.config import REPO_ROOT
from recipe_ml.data import Ratings
from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.storage.redis import RedisInteractionStore
from recipe_ml.training.snapshot import code_version, read_live, take_snapshot


def write(path: Path, text: str) -> None:
    path.write_text(text)


def data_dir(tmp_path: Path) -> Path:
    """3 users, 4 recipes; user 1's validation recipe is 30."""
    write(tmp_path / "train.csv", "user_id,recipe_id,rating\n1,10,5\n1,20,4\n2,20,3\n3,30,5\n")
    write(tmp_path / "validation.csv", "user_id,recipe_id,rating\n1,30,4\n2,40,5\n")
    return tmp_path


def live(*rows: tuple[int, int, int]) -> Ratings:
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return Ratings(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].astype(np.int8))


def test_live_users_and_recipes_join_the_maps_and_held_out_pairs_stay_out_of_the_measured_fit(
    tmp_path: Path,
) -> None:
    snapshot = take_snapshot(data_dir(tmp_path), live((1, 30, 5), (77, 10, 5), (77, 99, 3)))

    assert snapshot.full.users.ids.tolist() == [1, 2, 3, 77]
    assert snapshot.full.items.ids.tolist() == [10, 20, 30, 40, 99]
    assert len(snapshot.full) == 4 + 2 + 3
    pairs = zip(snapshot.measured.user_index, snapshot.measured.item_index, strict=True)
    measured = {(int(u), int(i)) for u, i in pairs}
    user_1, recipe_30 = snapshot.full.users.index_of(1), snapshot.full.items.index_of(30)
    assert (user_1, recipe_30) not in measured  # user 1 cooked their held-out recipe live
    assert len(snapshot.measured) == 4 + 2
    assert snapshot.rows == {
        "train": 4,
        "validation": 2,
        "live": 3,
        "users": 4,
        "recipes": 5,
        "live_only_users": 1,
        "live_only_recipes": 1,
    }


def test_fingerprints_follow_the_data_and_the_held_out_part_alone(tmp_path: Path) -> None:
    directory = data_dir(tmp_path)
    shipped = take_snapshot(directory, live())
    with_live = take_snapshot(directory, live((77, 10, 5)))
    assert shipped.fingerprint == take_snapshot(directory, live()).fingerprint
    assert with_live.fingerprint != shipped.fingerprint
    assert with_live.held_out_fingerprint == shipped.held_out_fingerprint


def test_read_live_says_why_it_read_nothing(redis_url: str) -> None:
    unset = read_live(None)
    empty = read_live(redis_url)
    unreachable = read_live(f"redis://127.0.0.1:{free_port()}/0")
    for data in (unset, empty, unreachable):
        assert len(data.ratings) == 0 and data.note.endswith("training on the shipped data only")
    assert "REDIS_URL is not set" in unset.note
    assert "the interaction store is empty" in empty.note
    assert "the interaction store is unreachable (ConnectionError" in unreachable.note


def test_read_live_turns_every_recorded_event_into_a_rating(redis_url: str) -> None:
    store = RedisInteractionStore(redis_url, 24.0)
    for n, (kind, rating) in enumerate([("rate", 2), ("cook", None), ("view", None), ("like", None)]):
        store.apply(
            InteractionEvent(user_id=5, recipe_id=100 + n, interaction_type=InteractionType(kind), rating=rating)
        )
    data = read_live(redis_url)
    assert data.note == "live: 4 interactions of 1 users from Redis"
    assert data.ratings.recipe_id.tolist() == [100, 101, 102, 103]
    assert data.ratings.rating.tolist() == [2, 5, 3, 5]


@pytest.mark.integration  # runs git
def test_the_code_version_is_the_checkout_else_the_bento_else_the_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert code_version().startswith("git ") and git.stdout.strip() in code_version()
    monkeypatch.delenv("BENTO_PATH", raising=False)
    assert code_version(tmp_path) == f"recipe-ml-backend {importlib.metadata.version('recipe-ml-backend')}"
    (tmp_path / "bento.yaml").write_text("service: service:RecipeService\nname: recipe_ml_service\nversion: abc123\n")
    monkeypatch.setenv("BENTO_PATH", str(tmp_path))
    assert code_version(tmp_path) == "bento recipe_ml_service:abc123"

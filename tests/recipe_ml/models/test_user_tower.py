"""The numpy user tower folds in exactly what the torch one does, and serving it never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipe_ml.config import REPO_ROOT
from recipe_ml.data import Interactions
from recipe_ml.models.base import Recommender
from recipe_ml.models.two_tower import TwoTowerRecommender
from recipe_ml.models.two_tower_nets import encoder_from_tower, fold_in_torch, tower_from_encoder
from recipe_ml.models.user_tower import USER_TOWER_FILE


@pytest.fixture(scope="module")
def two_tower(small_splits: dict[str, Interactions]) -> TwoTowerRecommender:
    model = TwoTowerRecommender(epochs=1)
    model.fit(small_splits["train"])
    return model


def histories(model: TwoTowerRecommender) -> list[np.ndarray]:
    """Every training user's history, an empty one and a one-recipe one."""
    return [model.history(u) for u in range(len(model.users))] + [np.zeros(0, dtype=np.int64), np.array([3])]


def test_numpy_fold_in_equals_torch_fold_in(two_tower: TwoTowerRecommender) -> None:
    tower = two_tower.user_tower
    scale = two_tower.affinity_weight / two_tower.temperature

    by_torch = fold_in_torch(encoder_from_tower(tower), histories(two_tower), scale)
    by_numpy = two_tower.fold_in(histories(two_tower))

    assert by_numpy.dtype == np.float32 and by_numpy.shape == by_torch.shape
    np.testing.assert_allclose(by_numpy, by_torch, rtol=1e-4, atol=1e-6)
    assert not by_numpy[-2].any(), "an empty history folds in to the zero vector"


def test_the_tower_round_trips_through_torch_weights(two_tower: TwoTowerRecommender) -> None:
    tower = two_tower.user_tower
    again = tower_from_encoder(encoder_from_tower(tower), tower.scale)

    for name in ("bag", "w1", "b1", "w2", "b2"):
        np.testing.assert_array_equal(getattr(again, name), getattr(tower, name))


@pytest.mark.integration
def test_a_saved_model_holds_the_tower_and_loads_without_torch(two_tower: TwoTowerRecommender, tmp_path: Path) -> None:
    two_tower.save(tmp_path / "model")
    assert (tmp_path / "model" / USER_TOWER_FILE).is_file()
    expected = two_tower.fold_in(histories(two_tower)[:50])
    np.save(tmp_path / "expected.npy", expected)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from recipe_ml.models.base import Recommender\n"
        f"model = Recommender.load(Path({str(tmp_path / 'model')!r}))\n"
        "model.use_device('cpu')\n"
        "got = model.fold_in([model.history(u) for u in range(50)])\n"
        f"np.testing.assert_allclose(got, np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-6)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO_ROOT))


def test_a_model_saved_with_torch_weights_only_still_loads(two_tower: TwoTowerRecommender, tmp_path: Path) -> None:
    """Stores trained before the numpy tower hold ``user_encoder.pt``: read once with torch."""
    import torch

    path = tmp_path / "model"
    two_tower.save(path)
    (path / USER_TOWER_FILE).unlink()
    torch.save(encoder_from_tower(two_tower.user_tower).state_dict(), path / "user_encoder.pt")

    loaded = Recommender.load(path)

    some = histories(two_tower)[:50]
    np.testing.assert_allclose(loaded.fold_in(some), two_tower.fold_in(some), rtol=1e-6)

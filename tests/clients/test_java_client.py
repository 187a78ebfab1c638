"""The Java client (clients/java) compiled with javac and run against a live server.

It is what the Spring Boot backend embeds, so it is checked the way the
backend uses it: real recommendations, an unknown user as the typed
``RecipeMlException`` (a 404 problem), an invalid request naming its field,
and a posted interaction changing the next answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.model_store import load_from_store
from harness.server import LocalServer
from recipe_ml.config import REPO_ROOT

pytestmark = pytest.mark.integration

CLIENT = REPO_ROOT / "clients" / "java"
JACKSON = [Path("/usr/share/java") / f"jackson-{part}.jar" for part in ("databind", "core", "annotations")]
SYSTEM_PACKAGES = "default-jdk-headless libjackson2-databind-java"
UNKNOWN_USER = 999_999_999


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The client and its check program compiled; the classpath to run them."""
    javac = shutil.which("javac")
    missing = [str(jar) for jar in JACKSON if not jar.is_file()]
    if javac is None or missing:
        pytest.skip(f"needs a JDK and Jackson: apt-get install {SYSTEM_PACKAGES} (missing: javac or {missing})")
    classes = tmp_path_factory.mktemp("java-classes")
    sources = sorted(str(path) for path in CLIENT.rglob("*.java"))
    jars = ":".join(str(jar) for jar in JACKSON)
    result = subprocess.run(
        [javac, "--release", "17", "-Xlint:all", "-Werror", "-d", str(classes), "-cp", jars, *sources],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return f"{classes}:{jars}"


def test_the_java_client_against_a_live_server(
    compiled: str, server: LocalServer, redis_url: str, model_store: Path
) -> None:
    model = load_from_store("recipe_popularity", home=model_store)[0]
    user, recipe = int(model.users.ids[5]), int(model.items.ids[0])
    java = shutil.which("java")
    assert java is not None

    result = subprocess.run(
        [
            java,
            "-cp",
            compiled,
            "com.recipeml.client.ClientCheck",
            server.base_url,
            str(user),
            str(recipe),
            str(UNKNOWN_USER),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["health"] == "ok" and seen["model_used"] == "two_tower+ease"
    assert seen["model_version"].startswith("recipe_two_tower:")
    assert len(seen["before"]) == 5
    assert seen["unknown"] == {
        "status": 404,
        "unknown_user": True,
        "user_id": UNKNOWN_USER,
        "cold_start": "/api/recommendations/cold-start",
    }
    assert seen["invalid"] == {"status": 422, "field": "top_k"}
    assert seen["accepted"] is True and seen["cooked"] == seen["before"][0]
    assert seen["cooked"] not in seen["after"] and seen["after_cached"] is False, "the interaction changed the answer"
    assert seen["batch"] == ["recipes:3", "failure:404"]
    assert seen["cold_start"] == 3 and seen["similar_users"] == 3
    assert len(seen["similar_recipes"]) == 3 and recipe not in seen["similar_recipes"]

"""The Java client (clients/java) built as a library by Maven, offline, then run against a live server.

It is what the Spring Boot backend embeds, so it is checked the way the
backend uses it: ``mvn package`` compiles it (``-Xlint:all -Werror``), runs
its JUnit tests and makes the jar, resolving only from the local repository
that Debian's Java packages install (``/usr/share/maven-repo``, no Maven
Central); then ``ClientCheck`` on that jar drives every method against a live
server: real recommendations, an unknown user as the typed
``RecipeMlException`` (a 404 problem), an invalid request naming its field,
a posted interaction changing the next answer, and the catalogue: a recipe
put with tags and read back, a bulk of two, a bad tag as a 422 naming its
field, ``excludeTags`` keeping the tagged recipes out of the user's list and
``requireTags`` with a tag nobody has giving an empty, ``exhausted`` list on
every recommendation route.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from edge.model_store import load_from_store
from harness.server import LocalServer
from recipe_ml.config import REPO_ROOT
from recipe_ml.events.schema import RECOMMENDATION_ID
from tests.fixtures.tools import apt_install, require_file, require_tool

pytestmark = pytest.mark.integration

CLIENT = REPO_ROOT / "clients" / "java"
DEBIAN_MAVEN_REPO = Path("/usr/share/maven-repo")
ARTIFACTS = {
    "com/fasterxml/jackson/core/jackson-databind/2.14.0/jackson-databind-2.14.0.pom": "libjackson2-databind-java",
    "org/junit/jupiter/junit-jupiter-engine/5.9.2/junit-jupiter-engine-5.9.2.pom": "junit5",
    "org/apache/maven/plugins/maven-resources-plugin/3.3.0/maven-resources-plugin-3.3.0.jar": (
        "libmaven-resources-plugin-java"
    ),
    "org/apache/maven/plugins/maven-compiler-plugin/3.10.1/maven-compiler-plugin-3.10.1.jar": (
        "libmaven-compiler-plugin-java"
    ),
    "org/apache/maven/plugins/maven-surefire-plugin/2.22.3/maven-surefire-plugin-2.22.3.jar": "libsurefire-java",
    "org/apache/maven/plugins/maven-jar-plugin/3.3.0/maven-jar-plugin-3.3.0.jar": "libmaven-jar-plugin-java",
}
"""What clients/java/pom.xml resolves from Debian's repository, and the package that installs each."""
JACKSON = [Path("/usr/share/java") / f"jackson-{part}.jar" for part in ("databind", "core", "annotations")]
UNKNOWN_USER = 999_999_999


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``mvn -o package`` of the client (its JUnit tests run); the classpath of the jar, its tests and Jackson."""
    require_tool("javac", apt_install("default-jdk-headless"))
    mvn = require_tool("mvn", apt_install("maven"))
    for artifact, package in ARTIFACTS.items():
        require_file(DEBIAN_MAVEN_REPO / artifact, apt_install(package))
    target = tmp_path_factory.mktemp("java-build")
    offline = ["-o", "-B", "-q", f"-Dmaven.repo.local={DEBIAN_MAVEN_REPO}", f"-Drecipeml.build.directory={target}"]
    result = subprocess.run(
        [mvn, *offline, "-f", str(CLIENT / "pom.xml"), "package"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reports = (target / "surefire-reports/com.recipeml.client.RecipeMlClientTest.txt").read_text()
    assert "Tests run: 9, Failures: 0, Errors: 0, Skipped: 0" in reports, reports
    jar = target / "recipe-ml-client-1.0.0.jar"
    return ":".join(str(path) for path in (jar, target / "test-classes", *JACKSON))


@dataclass(frozen=True)
class Check:
    """What ``ClientCheck`` printed, and the known user and recipe it was given."""

    seen: dict[str, Any]
    user: int
    recipe: int


@pytest.fixture(scope="module")
def check(built: str, server: LocalServer, test_redis_url: str, model_store: Path) -> Iterator[Check]:
    """``ClientCheck`` run once against the shared server, on the emptied test database (emptied again after)."""
    model = load_from_store("recipe_popularity", home=model_store)[0]
    user, recipe = int(model.users.ids[5]), int(model.items.ids[0])
    java = require_tool("java", apt_install("default-jdk-headless"))
    database = redis.Redis.from_url(test_redis_url)
    database.flushdb()

    result = subprocess.run(
        [
            java,
            "-cp",
            built,
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
    yield Check(json.loads(result.stdout.strip().splitlines()[-1]), user, recipe)
    database.flushdb()
    database.close()


def test_the_java_client_against_a_live_server(check: Check) -> None:
    seen, recipe = check.seen, check.recipe
    assert seen["health"] == "ok" and seen["model_used"] == "two_tower"
    assert seen["model_version"].startswith("recipe_two_tower:")
    assert re.fullmatch(RECOMMENDATION_ID, seen["recommendation_id"]) and seen["variant"] == "default"
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
    assert seen["exhausted"] is False
    # The fixture emptied the database; the first health made the server read the empty catalogue.
    assert seen["catalogue_before"] == {"recipes": 0, "hidden": 0, "version": 0}


def test_the_java_client_writes_the_catalogue_and_filters_by_tag(check: Check) -> None:
    catalogue = check.seen["catalogue"]
    tag, tagged = catalogue["tag"], catalogue["tagged"]
    assert tagged == check.seen["after"][:3]
    assert catalogue["written"] == {
        "applied": True,
        "in_catalogue": True,
        "known_to_models": True,
        "tags": sorted([tag, "vegetarian"]),
    }
    got = catalogue["got"]
    assert catalogue["got_is_written"] is True, got
    assert got["recipe_id"] == tagged[0] and got["title"] == "Java client check"
    assert got["published_at"] == "2026-11-30T08:00:00Z" and got["updated_at"] is not None
    assert catalogue["bulk"] == {
        "applied": 2,
        "stale": 0,
        "results": [{"recipe_id": tagged[1], "applied": True}, {"recipe_id": tagged[2], "applied": True}],
    }
    assert catalogue["bulk_got"] == [tag]
    assert catalogue["bad_tag"] == {"status": 422, "field": "tags.0"}
    assert catalogue["bad_bulk"] == {"status": 422, "field": "recipes.1.tags.1"}
    assert catalogue["unknown_recipe"] == {"status": 404, "unknown_recipe": True, "recipe_id": UNKNOWN_USER}

    assert len(catalogue["without_tag"]) == 5 and not set(catalogue["without_tag"]) & set(tagged)
    assert catalogue["without_tag_exhausted"] is False
    assert sorted(catalogue["only_tag"]) == sorted(tagged) and catalogue["only_tag_exhausted"] is True
    assert catalogue["unused_tag"] == {
        route: [0, True] for route in ("recipes", "batch", "cold_start", "similar_recipes")
    }
    health = catalogue["health"]
    assert (health["recipes"], health["hidden"]) == (3, 0)
    assert health["version"] > check.seen["catalogue_before"]["version"], "two writes moved the version"

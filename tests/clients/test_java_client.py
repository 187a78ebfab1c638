"""The Java client (clients/java) built as a library by Maven, offline, then run against a live server.

It is what the Spring Boot backend embeds, so it is checked the way the
backend uses it: ``mvn package`` compiles it (``-Xlint:all -Werror``), runs
its JUnit tests and makes the jar, resolving only from the local repository
that Debian's Java packages install (``/usr/share/maven-repo``, no Maven
Central); then ``ClientCheck`` on that jar drives every method against a live
server: real recommendations, an unknown user as the typed
``RecipeMlException`` (a 404 problem), an invalid request naming its field,
and a posted interaction changing the next answer.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

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
    assert "Tests run: 4, Failures: 0, Errors: 0, Skipped: 0" in reports, reports
    jar = target / "recipe-ml-client-1.0.0.jar"
    return ":".join(str(path) for path in (jar, target / "test-classes", *JACKSON))


def test_the_java_client_against_a_live_server(
    built: str, server: LocalServer, redis_url: str, model_store: Path
) -> None:
    model = load_from_store("recipe_popularity", home=model_store)[0]
    user, recipe = int(model.users.ids[5]), int(model.items.ids[0])
    java = require_tool("java", apt_install("default-jdk-headless"))

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
    seen = json.loads(result.stdout.strip().splitlines()[-1])
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

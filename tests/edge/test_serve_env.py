"""The start-up check of a service started alone (``edge.serve_env``): every refusal names the variable."""

from __future__ import annotations

import pytest

from edge.serve_env import DEPENDS_VAR, SERVICE_NAME_VAR, ServeEnvError, check_serve_env

GRAPH = {"api": ["tt_runner", "als_runner"], "tt_runner": [], "als_runner": []}
BOTH = "tt_runner=http://tt:8000 als_runner=https://als:8000"


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {SERVICE_NAME_VAR: "tt_runner"},
        {SERVICE_NAME_VAR: "api", DEPENDS_VAR: BOTH},
        {DEPENDS_VAR: "tt_runner=http://tt:8000"},  # bentoml serve with one runner elsewhere
    ],
)
def test_fitting_variables_pass(environ: dict[str, str]) -> None:
    check_serve_env(environ, GRAPH)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({SERVICE_NAME_VAR: "apu"}, f"{SERVICE_NAME_VAR}='apu' is not a service of this Bento; its services: api"),
        ({SERVICE_NAME_VAR: "api", DEPENDS_VAR: "tt_runnr=http://tt:8000 als_runner=http://a:1"}, "names tt_runnr"),
        ({SERVICE_NAME_VAR: "tt_runner", DEPENDS_VAR: "als_runner=http://a:1"}, "its dependencies: (none)"),
        ({SERVICE_NAME_VAR: "api", DEPENDS_VAR: "tt_runner=http://tt:8000"}, "must give the URL of als_runner"),
        ({SERVICE_NAME_VAR: "api", DEPENDS_VAR: "tt_runner=tt:8000 als_runner=http://a:1"}, "'tt_runner=tt:8000'"),
        ({DEPENDS_VAR: "tt_runner"}, "is not NAME=http://HOST:PORT"),
    ],
)
def test_a_misfit_is_refused_naming_the_variable_and_value(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ServeEnvError) as refused:
        check_serve_env(environ, GRAPH)
    assert named in str(refused.value)
    assert SERVICE_NAME_VAR in str(refused.value) or DEPENDS_VAR in str(refused.value)

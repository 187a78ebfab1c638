"""Write deploy/secrets.env from deploy/secrets.env.example, a random value in place of every placeholder.

``make compose-up`` (and ``make compose-config``) run it first, so a fresh
clone starts the compose stack with one command and no secret is ever in
git. Each distinct ``change-me-…`` placeholder gets one random value, used
wherever it appears: REDIS_URL carries the very password the redis service
is started with. An existing deploy/secrets.env is never touched: it holds
the running stack's passwords. The example's values themselves are refused
at start-up (``recipe_ml.config``, and the redis and grafana services in
docker-compose.yml), so a hand copy of the example cannot run by mistake.

Standard library only: it runs with the machine's ``python3``, before
``make setup``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
EXAMPLE = DEPLOY / "secrets.env.example"
SECRETS = DEPLOY / "secrets.env"
PLACEHOLDER = re.compile(r"change-me[A-Za-z0-9-]*")
VARIABLE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
HEADER = (
    "# Written by `make compose-secrets` from deploy/secrets.env.example, with random values.\n"
    "# Git-ignored: keep it out of version control. Edit a value, then restart the stack.\n"
)


def random_secret() -> str:
    """48 hex characters: URL-safe (it goes into REDIS_URL), long enough for an API key."""
    return secrets.token_hex(24)


def fill(example: str, secret: Callable[[], str] = random_secret) -> str:
    """``example`` with each distinct placeholder replaced by one value of ``secret()``."""
    chosen: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) not in chosen:
            chosen[match.group(0)] = secret()
        return chosen[match.group(0)]

    return HEADER + PLACEHOLDER.sub(replace, example)


def write_secrets(example: Path = EXAMPLE, target: Path = SECRETS) -> list[str] | None:
    """Write ``target`` (owner-only) from ``example``; the variables it holds, or None when it already existed."""
    text = fill(example.read_text())
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return VARIABLE.findall(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--example", type=Path, default=EXAMPLE, help="the placeholders' file (%(default)s)")
    parser.add_argument("--target", type=Path, default=SECRETS, help="the file to write (%(default)s)")
    args = parser.parse_args(argv)
    written = write_secrets(args.example, args.target)
    if written is None:
        print(f"{args.target} exists: left as it is")
    else:
        print(f"wrote {args.target} (mode 600) with random values for {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

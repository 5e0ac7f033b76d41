"""The tokens the tests use, and a scan of a whole test run's logs for them (run by scripts/test.sh).

``python -m tests.support.secrets DIR…`` reads every file under each DIR (the run's pytest output and its
temporary folders, where the servers and workers started by tests write their logs) and exits 1 naming
each file that holds a token. Tokens made at random by the commands under test never leave their test.
"""

from __future__ import annotations

import sys
from pathlib import Path


def known() -> dict[str, str]:
    """Each token the tests send, by where it is defined."""
    from tests.feed_server import test_ingest, test_limits, test_status

    tokens = {"config/publishers.toml (demo)": "demo-shcp-token", "test_ingest.TOKEN": test_ingest.TOKEN,
              "test_status.OPERATOR": test_status.OPERATOR}
    tokens.update({f"test_limits.TOKENS[{k}]": v for k, v in test_limits.TOKENS.items()})
    return tokens


def scan(folders: list[Path], tokens: dict[str, str]) -> list[str]:
    """'file: token name' for each file under ``folders`` that holds a token."""
    found = []
    wanted = {name: value.encode() for name, value in tokens.items()}
    for folder in folders:
        files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {name}" for name, value in wanted.items() if value in data]
    return found


def main(argv: list[str]) -> int:
    tokens = known()
    found = scan([Path(a) for a in argv], tokens)
    for line in found:
        print(f"secret in a log: {line}")
    print(f"secrets: {len(tokens)} test tokens looked for under {', '.join(argv)}: found {len(found)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

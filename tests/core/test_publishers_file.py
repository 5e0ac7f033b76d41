"""Editing the publishers file: comments and unknown keys kept, atomic, tokens only hashed, none ever logged."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import os
from pathlib import Path

import pytest

from core import publishers_file as pf
from core.exceptions import AuthenticationError, ConfigurationError
from core.publishers import load_publishers
from ocds_live.cli import main

ORIGINAL = """# Publishers of the test platform.
# a comment that must survive

[[publisher]]
name = "shcp"   # the federal government
prefixes = ["ocds-07smqs"]
policy = "lenient"
extensions = ["https://example.org/extension.json"]  # a key this module does not know
rules = ["MX-RFC"]
token_sha256 = "99ee09730d2b1a8b684a2c4732acdffb0caac1c048a942edc1f7bd1bb753967a"

[publisher.contact]
email = "datos@example.org"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "publishers.toml"
    target.write_text(ORIGINAL, encoding="utf-8")
    return target


def test_add_keeps_comments_unknown_keys_and_other_entries(path: Path) -> None:
    """Adding a publisher appends it and leaves every existing byte of the file as it was."""
    token = pf.add_publisher(path, "cdmx", ["ocds-87sd3t"], policy="strict", rate_limit=20, description="CDMX")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(ORIGINAL)
    added = load_publishers(path).by_name["cdmx"]
    assert (added.prefixes, added.policy, added.rate_limit) == (("ocds-87sd3t",), "strict", 20)
    assert added.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in text
    assert len(token) >= 43


def test_rotate_token_changes_only_the_hash(path: Path) -> None:
    """rotate-token replaces one publisher's hash; the old token stops matching, the new one matches."""
    token = pf.rotate_token(path, "shcp")
    text = path.read_text(encoding="utf-8")
    assert text == ORIGINAL.replace("99ee09730d2b1a8b684a2c4732acdffb0caac1c048a942edc1f7bd1bb753967a",
                                    hashlib.sha256(token.encode()).hexdigest())
    publishers = load_publishers(path)
    assert publishers.authenticate(token).name == "shcp"
    with pytest.raises(AuthenticationError):
        publishers.authenticate("demo-shcp-token")


def test_refusals_leave_the_file_untouched(path: Path) -> None:
    """A duplicate name, an unknown name or an entry the loader would refuse change nothing, leave no temp file."""
    with pytest.raises(ConfigurationError, match="exists already"):
        pf.add_publisher(path, "shcp", ["ocds-07smqs"])
    with pytest.raises(ConfigurationError, match="no publisher named 'nobody'"):
        pf.rotate_token(path, "nobody")
    with pytest.raises(ConfigurationError, match="policy must be"):
        pf.add_publisher(path, "odd", ["ocds-x"], policy="sometimes")
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == ["publishers.toml"]


def test_the_file_keeps_its_permissions(path: Path) -> None:
    """The rewritten file has the mode the old one had (a secret-holding file stays private)."""
    os.chmod(path, 0o600)
    pf.rotate_token(path, "shcp")
    assert path.stat().st_mode & 0o777 == 0o600


def test_tokens_are_compared_in_constant_time(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Authentication compares the hash of the token given with each stored hash through hmac.compare_digest."""
    token = pf.add_publisher(path, "cdmx", ["ocds-87sd3t"])
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    publishers = load_publishers(path)
    with pytest.raises(AuthenticationError):
        publishers.authenticate("wrong")
    assert {b for _, b in compared} == {hashlib.sha256(b"wrong").hexdigest()}
    assert {a for a, _ in compared} == {p.token_sha256 for p in publishers.by_name.values()}
    assert publishers.authenticate(token).name == "cdmx"


def test_no_token_is_ever_logged(path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                 caplog: pytest.LogCaptureFixture) -> None:
    """add, rotate-token and hash-token print a made token once on stdout, and never in stderr or any log."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OCDS_LIVE_PUBLISHERS_FILE", str(path))
    assert main(["-v", "publishers", "add", "cdmx", "--prefix", "ocds-87sd3t", "--rate-limit", "5"]) == 0
    added = capsys.readouterr()
    assert main(["-v", "publishers", "rotate-token", "shcp"]) == 0
    rotated = capsys.readouterr()
    chosen = "a-token-the-operator-chose-0123456789"
    monkeypatch.setattr("sys.stdin", io.StringIO(chosen + "\n"))
    assert main(["-v", "publishers", "hash-token"]) == 0
    hashed = capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(chosen + "\n"))
    assert main(["-v", "publishers", "rotate-token", "cdmx", "--token-stdin"]) == 0
    chosen_rotated = capsys.readouterr()
    assert main(["-v", "publishers", "list"]) == 0
    listed = capsys.readouterr()

    made = [added.out.strip().splitlines()[-1], rotated.out.strip().splitlines()[-1]]
    publishers = load_publishers(path)
    assert publishers.authenticate(made[1]).name == "shcp"
    assert publishers.authenticate(chosen).name == "cdmx"
    assert hashed.out.strip() == hashlib.sha256(chosen.encode()).hexdigest()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for token in [*made, chosen]:
        everything_else = "\n".join([logs, added.err, rotated.err, hashed.err, hashed.out, chosen_rotated.out,
                                     chosen_rotated.err, listed.out, listed.err, path.read_text(encoding="utf-8")])
        assert token not in everything_else
    assert (added.out + rotated.out).count(made[0]) == 1 and (added.out + rotated.out).count(made[1]) == 1

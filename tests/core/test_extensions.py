"""Declared extensions are resolved from the configured folder, then the cache, then one download."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.exceptions import ExtensionUnavailableError, SchemaUnavailableError
from core.extensions import ExtensionResolver, cache_dir_for
from tests.conftest import EXTENSIONS_DIR

APF_SUPPLIERS = ("https://raw.githubusercontent.com/open-contracting/ocds_contract_suppliers_extension/master/"
                 "extension.json")
GUARANTEES = "INAImexico/ocds_guarantees_extension/master"


class _Server:
    """A local HTTP server of a folder that counts the requests it answers."""

    def __init__(self, root: Path) -> None:
        self.paths: list[str] = []
        served = self.paths

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                served.append(self.path)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "www"
    shutil.copytree(EXTENSIONS_DIR / GUARANTEES, root / "ext")
    srv = _Server(root)
    yield srv
    srv.close()


def test_declared_url_resolves_from_the_configured_folder(tmp_path: Path) -> None:
    """A URL in the configured folder's index.json resolves to the folder its entry names."""
    resolver = ExtensionResolver(EXTENSIONS_DIR, tmp_path, download=False)
    folder = resolver.resolve(APF_SUPPLIERS)
    assert folder == EXTENSIONS_DIR / "open-contracting/ocds_contract_suppliers_extension/master"
    assert (folder / "release-schema.json").is_file()


def test_unknown_url_without_downloads_says_which_extension_and_why(tmp_path: Path) -> None:
    """An extension in neither the folder nor the cache, with downloads off, raises with its URL and reason."""
    resolver = ExtensionResolver(EXTENSIONS_DIR, tmp_path, download=False)
    url = "https://example.org/ocds_nothing_extension/extension.json"
    with pytest.raises(ExtensionUnavailableError) as info:
        resolver.resolve(url)
    assert info.value.url == url and "downloads are off" in info.value.reason
    assert isinstance(info.value, SchemaUnavailableError) and "OCDS_LIVE_EXTENSIONS_DIR" in str(info.value)


def test_download_happens_once_into_the_cache_and_later_resolvers_read_the_cache(
        server: _Server, tmp_path: Path) -> None:
    """A declared URL is downloaded once (metadata, schema patch, listed codelists); the cache serves it after."""
    url = f"{server.url}/ext/extension.json"
    first = ExtensionResolver(None, tmp_path / "cache", schemes=("http",))
    folder = first.resolve(url)
    assert folder == tmp_path / "cache" / "extensions" / cache_dir_for(url)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "codelists/+partyRole.csv", "codelists/guaranteeType.csv", "codelists/guaranteedObligations.csv",
        "extension.json", "release-schema.json",
    ]
    assert (folder / "release-schema.json").read_bytes() == (EXTENSIONS_DIR / GUARANTEES / "release-schema.json"
                                                             ).read_bytes()
    fetched = len(server.paths)
    assert fetched == 5
    assert first.resolve(url) == folder
    later = ExtensionResolver(None, tmp_path / "cache", download=False)
    assert later.resolve(url) == folder
    assert len(server.paths) == fetched, "the cache was not used"


def test_failed_download_is_not_retried_by_the_same_resolver(server: _Server, tmp_path: Path) -> None:
    """A URL that cannot be downloaded fails once; asking again does not fetch again."""
    resolver = ExtensionResolver(None, tmp_path / "cache", schemes=("http",))
    url = f"{server.url}/missing/extension.json"
    for _ in range(3):
        with pytest.raises(ExtensionUnavailableError, match="cannot download"):
            resolver.resolve(url)
    assert server.paths == ["/missing/extension.json"]


def test_only_allowed_schemes_are_downloaded(tmp_path: Path) -> None:
    """A declared URL that is not https (by default) is never fetched: file: and plain http are refused."""
    resolver = ExtensionResolver(None, tmp_path)
    for url in ("file:///etc/passwd/extension.json", "http://127.0.0.1:1/extension.json"):
        with pytest.raises(ExtensionUnavailableError, match="only https URLs"):
            resolver.resolve(url)


def test_cache_folder_of_a_github_url_is_owner_repo_ref() -> None:
    """Downloaded GitHub extensions are kept as OWNER/REPO/REF, the layout of ../shared/ocds/extensions."""
    assert cache_dir_for(APF_SUPPLIERS) == "open-contracting/ocds_contract_suppliers_extension/master"
    assert cache_dir_for("https://host.example/a/../b/extension.json") == "host.example/a/b"

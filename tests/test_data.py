"""The data cache hands out only verified files; corrupt files are replaced; offline errors say what to do."""

import hashlib
from pathlib import Path

import pytest

from coursekit import data

CONTENT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(directory))
    return directory


def served_asset(tmp_path: Path, content: bytes = CONTENT) -> data.Asset:
    """An asset whose URL is a local file: urllib serves file:// URLs, so no network is needed."""
    source = tmp_path / "upstream.txt"
    source.write_bytes(content)
    return data.Asset(name="sample", filename="sample.txt", url=source.as_uri(),
                      sha256=hashlib.sha256(CONTENT).hexdigest(), size=len(CONTENT))


def test_download_verifies_and_lands_in_the_first_cache_dir(cache, tmp_path):
    asset = served_asset(tmp_path)
    got = data.path(asset)
    assert got == cache / "sample.txt"
    assert got.read_bytes() == CONTENT
    assert not list(cache.glob("*.part")), "the temporary download file must be renamed, not left behind"


def test_corrupt_file_is_reported_and_downloaded_again(cache, tmp_path, capsys):
    asset = served_asset(tmp_path)
    cache.mkdir()
    (cache / "sample.txt").write_bytes(CONTENT[:10])  # truncated
    got = data.path(asset)
    assert got.read_bytes() == CONTENT
    assert "corrupt or truncated" in capsys.readouterr().err


def test_a_download_with_the_wrong_hash_is_never_saved(cache, tmp_path):
    asset = served_asset(tmp_path, content=b"something else entirely")
    with pytest.raises(data.DataError, match="sha256"):
        data.path(asset)
    assert not (cache / "sample.txt").exists()
    assert not list(cache.glob("*.part"))


def test_offline_error_names_file_url_and_cache_dir(cache):
    asset = data.Asset(name="sample", filename="sample.txt", url="http://127.0.0.1:9/sample.txt",
                       sha256="0" * 64, size=1)
    with pytest.raises(data.DataError) as error:
        data.path(asset)
    message = str(error.value)
    assert "sample.txt" in message and asset.url in message and str(cache) in message


def test_missing_file_without_download_names_the_fetch_command(cache):
    with pytest.raises(data.DataError, match="python -m coursekit data fetch tinyshakespeare"):
        data.path("tinyshakespeare", download=False)


def test_all_cache_dirs_are_searched_and_downloads_go_to_the_first(tmp_path, monkeypatch):
    first, second = tmp_path / "writable", tmp_path / "shared"
    second.mkdir()
    (second / "sample.txt").write_bytes(CONTENT)
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, f"{first}:{second}")
    asset = data.Asset(name="sample", filename="sample.txt", url="http://127.0.0.1:9/x",
                       sha256=hashlib.sha256(CONTENT).hexdigest(), size=len(CONTENT))
    assert data.path(asset) == second / "sample.txt"
    assert data.cache_dir() == first


def test_unknown_asset_lists_the_known_ones():
    with pytest.raises(data.DataError, match="tinyshakespeare"):
        data.path("shakespeare")


def test_gpt2_vocabulary_files_are_found_offline_in_their_package(cache):
    encoder = data.path("gpt2-encoder", download=False)
    merges = data.path("gpt2-merges", download=False)
    assert encoder.name == "encoder.json" and merges.name == "vocab.bpe"


def test_the_registered_corpus_hash_is_the_published_one():
    # From ../shared/data/README.md (char-rnn's input.txt); a typo here would reject every good download.
    assert data.ASSETS["tinyshakespeare"].sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

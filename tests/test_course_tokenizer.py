"""course_tokenizer: notebook 01's BPE-512 tokenizer is found in the cache, or trained again identically and saved."""

import pytest
from tokenizers import Tokenizer

from coursekit import course_tokenizer, data


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A cache holding only the corpus, so no tokenizer saved by an earlier test or notebook is found."""
    corpus = data.path("tinyshakespeare")
    (tmp_path / corpus.name).symlink_to(corpus)
    monkeypatch.setenv("COURSEKIT_DATA_DIR", str(tmp_path))
    return tmp_path


def test_missing_tokenizer_is_trained_saved_and_then_loaded(private_cache, capsys):
    assert course_tokenizer.find_bpe512() is None
    trained = course_tokenizer.load_bpe512()
    assert "trained" in capsys.readouterr().out
    saved = private_cache / course_tokenizer.FILENAME
    assert saved.is_file() and trained.get_vocab_size() == course_tokenizer.VOCAB_SIZE
    loaded = course_tokenizer.load_bpe512()
    assert "loaded" in capsys.readouterr().out
    assert course_tokenizer.tokenizer_id(loaded) == course_tokenizer.tokenizer_id(trained)


def test_training_is_deterministic_and_encodes_anything():
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20
    first, second = (course_tokenizer.train_bpe512(text, vocab_size=300) for _ in range(2))
    assert first.to_str() == second.to_str()
    for sample in ["Aluminium", "ü€ 한국어 🙂", ""]:
        assert first.decode(first.encode(sample).ids) == sample


def test_a_file_with_another_vocabulary_size_is_replaced(private_cache, capsys):
    target = private_cache / course_tokenizer.FILENAME
    target.parent.mkdir(parents=True)
    course_tokenizer.train_bpe512("to be or not to be", vocab_size=260).save(str(target))
    tokenizer = course_tokenizer.load_bpe512()
    assert "not 512" in capsys.readouterr().out
    assert tokenizer.get_vocab_size() == 512 and Tokenizer.from_file(str(target)).get_vocab_size() == 512

"""coursekit.bigram: the count-table yardstick and the reference models behave as the notebook says."""

import pytest
import torch
from torch.nn import functional as F

from coursekit import bigram

IDS = torch.tensor([0, 1, 2, 1, 2, 2, 0, 3, 1, 2, 0])  # a tiny "text" over 4 tokens


def test_table_loss_equals_cross_entropy_over_every_pair():
    counts = bigram.bigram_counts(IDS, 4)
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    current, following = bigram.bigram_pairs(IDS)
    assert bigram.table_loss(logits, counts) == pytest.approx(F.cross_entropy(logits[current], following).item(), abs=1e-6)


def test_the_count_table_is_the_lowest_loss_any_bigram_model_reaches():
    counts = bigram.bigram_counts(IDS, 4)
    best = bigram.count_model_loss(counts)
    probs = counts / counts.sum(dim=1, keepdim=True)
    assert bigram.table_loss((probs + 1e-12).log(), counts) == pytest.approx(best, abs=1e-6)  # the table reaches it
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):  # and no other table goes below it
        other = (probs + 1e-12).log() + 0.5 * torch.randn(4, 4, generator=generator, dtype=torch.float64)
        assert bigram.table_loss(other, counts) > best


def test_one_hot_pairs_rejects_a_batch_with_a_message_naming_the_shape():
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        bigram.one_hot_pairs(IDS[None], 4)


def test_the_embedding_model_is_the_one_hot_model_without_the_first_bias():
    torch.manual_seed(0)
    one_hot, embedding = bigram.BigramOneHotMLP(4), bigram.BigramEmbeddingMLP(4)
    with torch.no_grad():
        one_hot.hidden.bias.zero_()
        embedding.embedding.weight.copy_(one_hot.hidden.weight.T)
        embedding.output.load_state_dict(one_hot.output.state_dict())
    assert torch.allclose(one_hot(F.one_hot(IDS, 4).float()), embedding(IDS), atol=1e-6)


@pytest.mark.parametrize("model_class", [bigram.BigramOneHotMLP, bigram.BigramEmbeddingMLP])
def test_generate_is_reproducible_and_starts_with_the_start_id(model_class):
    model = model_class(4)
    runs = [model.generate(2, 20, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 21 and runs[0][0] == 2

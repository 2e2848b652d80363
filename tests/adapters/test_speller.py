"""The token head's spelling score: shared n-grams, a zero start, and what it teaches unseen tokens."""

import torch

from xasr.adapters.speller import TokenSpeller, spelling_features, token_spellings
from tests.tiny import tiny_tokenizer


def test_tokens_spelled_alike_share_features_and_marks_tell_space_and_capital_apart():
    spades, spaded, cat = (set(spelling_features(t, 4096)) for t in (" spades", " spaded", " cat"))
    assert len(spades & spaded) > len(spades) / 2
    assert len(spades & cat) <= 2  # hash collisions aside, only the leading-space mark
    assert spelling_features(" Spades", 4096) != spelling_features(" spades", 4096)
    assert spelling_features("spades", 4096) != spelling_features(" spades", 4096)
    assert spelling_features(" spades", 4096) == spelling_features(" spades", 4096)  # no per-process hash salt


def test_token_spellings_are_the_texts_the_tokenizer_writes():
    tokenizer = tiny_tokenizer()
    spellings = token_spellings(tokenizer, len(tokenizer) + 3)
    assert len(spellings) == len(tokenizer) + 3 and spellings[-3:] == ["", "", ""]
    a = tokenizer(" a", add_special_tokens=False)["input_ids"]
    assert "".join(spellings[i] for i in a) == " a"


def test_a_new_speller_scores_nothing_and_the_cached_table_follows_the_weights():
    speller = TokenSpeller(input_dim=8, dim=4, buckets=64)
    speller.set_vocabulary(["", " a", " ab", "B"])
    vectors = torch.randn(3, 8)
    assert torch.equal(speller(vectors), torch.zeros(3, 4))
    with torch.no_grad():
        speller.query.weight.normal_()
        before = speller(vectors)
        speller.ngrams.weight.mul_(2.0)
        torch.testing.assert_close(speller(vectors), 2 * before)
    torch.testing.assert_close(speller(vectors, torch.tensor([3, 1])), speller(vectors)[:, [3, 1]])


def test_training_one_token_teaches_tokens_spelled_like_it():
    vocabulary = [" spade", " spades", " spaded", " cat", " dog", " hill", " moon", " tree"]
    torch.manual_seed(0)
    speller = TokenSpeller(input_dim=16, dim=16, buckets=512)
    speller.set_vocabulary(vocabulary)
    optimiser = torch.optim.Adam(speller.parameters(), lr=0.05)
    vector = torch.randn(1, 16)
    seen = torch.tensor([0, 3, 4, 5])  # " spades" and " spaded" are never a target nor a candidate
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(speller(vector, seen), torch.tensor([0]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        scores = speller(vector)[0]
    unseen_alike, unseen_other = scores[[1, 2]], scores[[6, 7]]
    assert unseen_alike.min() > unseen_other.max()

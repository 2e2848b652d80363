"""The token head's spelling score: LLM tokens that are spelled alike share what is learned about them.

The stage-1 token head reads a C-Former vector through the LLM's output embedding, one row per token:
a token heard a few times in training keeps a row that was trained a few times, and the 49k-token
vocabulary of an LLM is mostly such tokens. The speller adds to every token's logit a score through
its spelling, in the manner of fastText's subword vectors: each token is the mean of learned vectors
of its hashed character n-grams (lower-cased, with word-boundary marks), plus a mark for a leading
space and one for a capital. Training "spades" then also moves "spaded" and " Spade", and a token
never heard in training still gets the score its letters earn.

    logit(token) = v . E[token] + (W v) . mean(G[g] for g in ngrams(token))

`W` starts at zero, so a trained C-Former grows a speller without changing what it computes.
"""

from __future__ import annotations

import zlib
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

NGRAM_ORDERS = (1, 2, 3)


def spelling_features(token: str, buckets: int, orders: Sequence[int] = NGRAM_ORDERS) -> list[int]:
    """Hashed feature ids of one token's text: marks, then its character n-grams within `<...>`."""
    word = token.strip()
    grams = []
    if token[:1].isspace():
        grams.append("#space")
    if word[:1].isupper():
        grams.append("#capital")
    spelled = f"<{word.lower()}>"
    for n in orders:  # letters alone without the marks, which every token has
        text = spelled[1:-1] if n == 1 else spelled
        grams += [f"{n}:{text[i:i + n]}" for i in range(len(text) - n + 1)]
    return [zlib.crc32(g.encode("utf-8")) % buckets for g in grams]


def token_spellings(tokenizer, vocab_size: int) -> list[str]:
    """The text of each token id as the LLM writes it alone (empty past the tokenizer's vocabulary)."""
    known = min(len(tokenizer), vocab_size)
    texts = tokenizer.batch_decode([[i] for i in range(known)], clean_up_tokenization_spaces=False)
    return texts + [""] * (vocab_size - known)


class TokenSpeller(nn.Module):
    """Spelling logits of C-Former vectors (in the LLM's embedding-table space) for all or some tokens."""

    def __init__(self, input_dim: int, dim: int, buckets: int):
        super().__init__()
        self.buckets = buckets
        self.query = nn.Linear(input_dim, dim)
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)
        self.ngrams = nn.EmbeddingBag(buckets, dim, mode="mean")
        nn.init.normal_(self.ngrams.weight, std=dim ** -0.5)
        # every token's features, concatenated: token i's are flat[starts[i] : starts[i] + counts[i]]
        for name in ("flat", "starts", "counts"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)
        self._table: Optional[tuple[tuple, Tensor]] = None  # (weights' version, every token's spelling vector)

    def set_vocabulary(self, spellings: Sequence[str]) -> None:
        """Index the tokens' spellings (token id = position in `spellings`)."""
        rows = [spelling_features(s, self.buckets) or [0] for s in spellings]
        counts = torch.tensor([len(r) for r in rows], dtype=torch.long)
        device = self.ngrams.weight.device
        self.flat = torch.tensor([f for r in rows for f in r], dtype=torch.long, device=device)
        self.counts = counts.to(device)
        self.starts = (torch.cumsum(counts, 0) - counts).to(device)
        self._table = None

    def table(self, ids: Optional[Tensor] = None) -> Tensor:
        """Spelling vectors [V or len(ids), dim] of every token, or of the tokens `ids`."""
        if self.counts.shape[0] == 0:
            raise RuntimeError("the speller has no vocabulary: call set_vocabulary(token_spellings(...)) first")
        if ids is not None:
            counts = self.counts[ids]
            offsets = torch.cumsum(counts, 0) - counts
            within = torch.arange(int(counts.sum()), device=counts.device) - offsets.repeat_interleave(counts)
            return self.ngrams(self.flat[self.starts[ids].repeat_interleave(counts) + within], offsets)
        if self.training or torch.is_grad_enabled():
            return self.ngrams(self.flat, self.starts)
        weight = self.ngrams.weight
        version = (weight.data_ptr(), weight._version, self.flat.data_ptr())
        if self._table is None or self._table[0] != version:  # decoding reads the whole table for every vector
            self._table = (version, self.ngrams(self.flat, self.starts))
        return self._table[1]

    def forward(self, vectors: Tensor, ids: Optional[Tensor] = None) -> Tensor:
        """Float32 spelling logits [..., V] (or [..., len(ids)]) of vectors [..., input_dim]."""
        return self.query(vectors.float()) @ self.table(ids).t()

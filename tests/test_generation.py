"""Generation: the KV-cached greedy and draft loops, budgets, loop and chat guards, the searches."""

import dataclasses

import pytest
import torch

from tests.test_model import tiny_batch, tiny_config, tiny_model
from tests.tiny import tiny_llama, tiny_tokenizer
from xasr.config import GenerationOptions
from xasr.encoders import build_encoder
from xasr.generation import fusion_generate, generate, head_top_k, greedy_generate, loop_start, trim_loop
from xasr.llm import LLM
from xasr.model import XASRModel


# ---- generation ---------------------------------------------------------------------------------
def test_greedy_loop_with_kv_cache_matches_transformers_generate():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3)
    torch.manual_seed(0)
    embeds = torch.randn(3, 7, 32)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, :3] = 0  # left padding
    mask[2, :1] = 0
    eos = tokenizer.eos_token_id
    ours = greedy_generate(model, embeds, mask, [12, 12, 12], eos)
    theirs = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=12, do_sample=False,
                            eos_token_id=eos, pad_token_id=tokenizer.pad_token_id).tolist()
    for a, b in zip(ours, theirs):
        b = b[: b.index(eos)] if eos in b else b
        assert a == b


def test_each_item_keeps_its_own_budget():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3)
    out = greedy_generate(model, torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.long), [2, 9],
                          eos_token_id=-1)  # an id never written: only the budget stops
    assert [len(t) for t in out] == [2, 9]


def test_loop_guard_finds_and_trims_repeating_tails():
    assert loop_start([1, 2, 3, 4]) is None
    assert loop_start([5, 7, 7, 7]) == 2  # keep one 7
    assert loop_start([1, 8, 9, 8, 9, 8, 9]) == 3  # keep one "8 9"
    assert loop_start([1, 8, 9, 8, 9]) is None  # a short pattern said twice may be speech
    sentence = list(range(10, 28))  # an 18-token sentence said twice and a half: cut to one copy
    assert loop_start([1, 2] + sentence * 2 + sentence[:11]) == 2 + len(sentence)
    assert loop_start([1, 2] + sentence + sentence[:11]) is None  # one copy and a part: not yet
    # repeats the speech announced (CIF count) stay: "one one one one" said four times
    assert trim_loop([4, 4, 4, 4], keep=4) == [4, 4, 4, 4]
    assert trim_loop([4, 4, 4, 4, 4, 4, 4, 4], keep=4) == [4, 4, 4, 4]
    assert trim_loop([1, 2, 3, 9, 9, 9, 9, 9], keep=3) == [1, 2, 3, 9]


def test_generation_budget_follows_the_cif_count():
    model = tiny_model(dropout=0.0).eval()
    options = GenerationOptions(budget_factor=1.0, budget_extra=2, loop_repeats=1000)
    for result in generate(model, tiny_batch(), options=options):
        assert len(result["token_ids"]) <= result["cif_tokens"] + 2
        assert result["alphas"].ndim == 1


def test_nothing_fired_means_an_empty_transcript_without_the_llm(monkeypatch):
    model = tiny_model(dropout=0.0).eval()
    with torch.no_grad():
        model.adapter.cif.weight_proj.bias.fill_(-30.0)  # alphas ~ 0: no token fires
    monkeypatch.setattr("xasr.generation.greedy_generate", lambda *a, **k: pytest.fail("the LLM was called"))
    assert [r["text"] for r in generate(model, tiny_batch())] == ["", ""]



def test_cif_search_is_the_token_head_argmax_without_the_llm(monkeypatch):
    model = tiny_model(dropout=0.0).eval()
    batch = tiny_batch()
    with torch.no_grad():
        out = model.adapter(*model.encode(batch))
        expected = [model.token_head(out.embeddings[b, :n]).argmax(-1).tolist()
                    for b, n in enumerate(out.lengths.tolist())]
    assert any(expected)
    monkeypatch.setattr("xasr.generation.greedy_generate", lambda *a, **k: pytest.fail("the LLM was called"))
    results = generate(model, batch, options=GenerationOptions(search="cif", collapse_repeats=False))
    assert [r["token_ids"] for r in results] == expected
    assert [r["text"] for r in results] == [model.llm.template.decode(ids) for ids in expected]
    assert all(len(r["token_ids"]) == r["cif_tokens"] for r in results)
    assert any(a == b for ids in expected for a, b in zip(ids, ids[1:]))  # a random head repeats itself
    collapsed = generate(model, batch, options=GenerationOptions(search="cif"))
    assert [r["token_ids"] for r in collapsed] == [[t for k, t in enumerate(ids) if k == 0 or t != ids[k - 1]]
                                                    for ids in expected]
    with pytest.raises(ValueError, match="one beam"):
        generate(model, batch, num_beams=2, options=GenerationOptions(search="cif"))
    with pytest.raises(ValueError, match="unknown search"):
        GenerationOptions(search="fast")


def test_draft_generate_writes_what_greedy_writes_in_fewer_passes_with_a_good_draft():
    import random

    from xasr.generation import draft_generate

    tokenizer = tiny_tokenizer()
    eos = tokenizer.eos_token_id
    for seed in range(4):
        model = tiny_llama(tokenizer, seed=seed).eval()
        torch.manual_seed(seed)
        embeds = torch.randn(3, 7, 32)
        mask = torch.ones(3, 7, dtype=torch.long)
        mask[1, :3] = 0  # left padding
        mask[2, :1] = 0
        budgets = [20, 15, 25]
        with torch.no_grad():
            reference = greedy_generate(model, embeds, mask, budgets, eos)
            rng = random.Random(seed)
            noisy = [[t if rng.random() < 0.7 else rng.randrange(60) for t in r] for r in reference]
            shifted = [r[1:] for r in reference]  # a draft that lost a token
            wrong = [[(t + 1) % 60 for t in r] + [1] * 20 for r in reference]  # the LLM agrees with none
            for drafts in (reference, noisy, shifted, [[], [], []], wrong):
                stats = {}
                probabilities: list = []
                assert draft_generate(model, embeds, mask, budgets, eos, drafts, stats=stats,
                                      probabilities=probabilities) == reference
                assert [len(p) for p in probabilities] == [len(r) for r in reference]
                if drafts is reference:
                    assert stats["forward_passes"] <= 3  # prompt, then 16 tokens a pass
                if drafts is wrong:  # the windows shrink to one token after the first rejection
                    rounds = stats["forward_passes"] - 1
                    assert stats["draft_tokens_fed"] <= 3 * 16 + 3 * rounds
            stop = lambda b, tokens: len(tokens) >= 4  # noqa: E731 (a stop rule ends items early)
            assert draft_generate(model, embeds, mask, budgets, eos, reference, should_stop=stop) == \
                greedy_generate(model, embeds, mask, budgets, eos, should_stop=stop)


def test_draft_search_gives_the_greedy_transcript_of_the_model():
    model = tiny_model(dropout=0.0).eval()
    batch = tiny_batch(seconds=(1.0, 0.6, 0.8), texts=("a", "b", "c"))
    greedy = generate(model, batch, options=GenerationOptions(search="greedy"))
    draft = generate(model, batch, options=GenerationOptions(search="draft"))
    assert [r["token_ids"] for r in draft] == [r["token_ids"] for r in greedy]
    assert [r["text"] for r in draft] == [r["text"] for r in greedy]


def test_chat_guard_replaces_a_transcript_that_left_the_cif_draft():
    from xasr.generation import word_agreement

    assert word_agreement("The cat sat.", "the cat sat") == 1.0
    assert word_agreement("the speech is a classic example of rhetoric", "the cat sat") < 0.3
    assert word_agreement("", "") == 1.0 and word_agreement("a", "") == 0.0
    model = tiny_model(dropout=0.0).eval()
    batch = tiny_batch()
    plain = generate(model, batch, options=GenerationOptions())
    assert all("draft_agreement" not in r for r in plain)  # the guard is off by default
    always = generate(model, batch, options=GenerationOptions(min_draft_agreement=1.01))
    drafts = generate(model, batch, options=GenerationOptions(search="cif"))
    assert [r["token_ids"] for r in always] == [r["token_ids"] for r in drafts]
    assert all(r["guarded"] and 0 <= r["draft_agreement"] <= 1 for r in always)
    lenient = generate(model, batch, options=GenerationOptions(min_draft_agreement=1e-9))
    kept = [r for r in lenient if r["draft_agreement"] > 0]
    assert all(not r.get("guarded") for r in kept)
    assert [r["token_ids"] for r in lenient] == [
        p["token_ids"] if r["draft_agreement"] > 0 else d["token_ids"] for r, p, d in zip(lenient, plain, drafts)]


# ---- fusion: the token head rescored by the LLM ---------------------------------------------------
def _collapsed_argmax(head: torch.Tensor) -> list[int]:
    ids = head.argmax(-1).tolist()
    return [t for k, t in enumerate(ids) if k == 0 or ids[k - 1] != t]


def _fusion_inputs(seed: int, counts=(5, 3, 6), vocab: int = 12):
    """Left-padded prompts for three items and head log-probabilities over the first `vocab` ids,
    with repeated argmaxes (double fires) in them."""
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.randn(len(counts), 6, 32, generator=generator)
    mask = torch.ones(len(counts), 6, dtype=torch.long)
    mask[-1, :2] = 0
    heads = []
    for n in counts:
        logits = torch.full((n, len(tokenizer)), -30.0)
        logits[:, :vocab] = 3 * torch.randn(n, vocab, generator=generator)
        if n > 2:
            logits[2] = logits[1]  # vector 2 names vector 1's token: one token fired twice
        heads.append(logits.log_softmax(-1))
    return tokenizer, model, embeds, mask, heads


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beams", [1, 3])
def test_fusion_without_the_llm_is_the_cif_search_with_collapsed_repeats(seed, beams):
    tokenizer, model, embeds, mask, heads = _fusion_inputs(seed)
    out = fusion_generate(model, embeds, mask, [head_top_k(h, 8) for h in heads], tokenizer.eos_token_id,
                          lm_weight=0.0, num_beams=beams)
    assert [ids for ids, _ in out] == [_collapsed_argmax(h) for h in heads]
    for (ids, probs), head in zip(out, heads):
        assert len(probs) == len(ids) and all(0 < p <= 1 for p in probs)


@torch.no_grad()
def _exhaustive_best(model, prompt, head, eos, lm_weight, bonus, top_k):
    """The best action sequence under fusion's score, each scored by a full forward pass (no cache)."""
    import itertools

    choices = [head[i].topk(top_k).indices.tolist() for i in range(len(head))]
    best, best_ids = -float("inf"), None
    for actions in itertools.product(*[c + [None] for c in choices]):
        ids, score, valid = [], 0.0, True
        for i, token in enumerate(actions):
            if token is None:  # merge: only where the head's top-k holds the token just written
                if not ids or ids[-1] not in choices[i]:
                    valid = False
                    break
                score += float(head[i][ids[-1]])
            else:
                ids.append(token)
                score += float(head[i][token]) + bonus
        if not valid:
            continue
        tokens = model.get_input_embeddings()(torch.tensor(ids, dtype=torch.long))
        logits = model(inputs_embeds=torch.cat([prompt, tokens])[None]).logits[0].float().log_softmax(-1)
        targets = ids + ([eos] if eos is not None else [])
        score += lm_weight * sum(float(logits[len(prompt) - 1 + k, t]) for k, t in enumerate(targets))
        if score > best + 1e-4:
            best, best_ids = score, ids
    return best_ids


@pytest.mark.parametrize("seed,with_end", [(0, True), (3, True), (5, False)])
def test_fusion_beam_search_finds_the_best_scored_transcript(seed, with_end):
    # every hypothesis kept: the beam search is exhaustive, so it must find what scoring each
    # candidate transcript from scratch finds (this checks the cache, masks and positions)
    tokenizer, model, embeds, mask, heads = _fusion_inputs(seed, counts=(3, 4), vocab=3)
    eos = tokenizer.eos_token_id if with_end else None
    out = fusion_generate(model, embeds, mask, [head_top_k(h, 3) for h in heads], eos, lm_weight=1.5,
                          token_bonus=0.5, num_beams=4 ** 4)
    for b, (ids, _) in enumerate(out):
        prompt = embeds[b][mask[b].bool()]
        assert ids == _exhaustive_best(model, prompt, heads[b], eos, 1.5, 0.5, 3)


def test_fusion_lets_the_llm_choose_among_the_heads_candidates():
    tokenizer, model, embeds, mask, heads = _fusion_inputs(4, counts=(6, 2), vocab=6)
    flat = [torch.full_like(h, -30.0).index_fill(1, torch.arange(6), 0.0).log_softmax(-1) for h in heads]
    # a head with no preference among six tokens: the LLM's own greedy choice among them wins
    out = fusion_generate(model, embeds, mask, [head_top_k(h, 6) for h in flat], tokenizer.eos_token_id,
                          lm_weight=1.0, token_bonus=5.0)
    with torch.no_grad():
        logits = model(inputs_embeds=embeds[:1]).logits[0, -1]
    assert out[0][0][0] == int(logits[:6].argmax())


def test_fusion_search_of_the_model():
    model = tiny_model(dropout=0.0).eval()
    batch = tiny_batch(seconds=(1.0, 0.6, 0.8), texts=("a", "b", "c"))
    cif = generate(model, batch, options=GenerationOptions(search="cif"))
    for context in ("text", "speech"):
        options = GenerationOptions(search="fusion", lm_weight=0.0, token_bonus=0.0, fusion_context=context)
        fused = generate(model, batch, num_beams=2, options=options)
        assert [r["token_ids"] for r in fused] == [r["token_ids"] for r in cif]
    with pytest.raises(ValueError, match="one beam"):
        generate(model, batch, num_beams=2, options=GenerationOptions(search="cif"))


def test_fusion_takes_the_llms_own_word_where_the_head_names_nothing_useful():
    tokenizer, model, embeds, mask, _ = _fusion_inputs(6, counts=(1,))
    with torch.no_grad():
        lm = model(inputs_embeds=embeds[:1]).logits[0, -1].float().log_softmax(-1)
    best = int(lm.argmax())
    others = [t for t in range(len(tokenizer)) if t != best][:4]
    # a masked vector: the head barely prefers four tokens, none of them the LLM's choice
    head = torch.zeros(1, len(tokenizer)).index_fill(1, torch.tensor(others), 0.01).log_softmax(-1)
    candidates = [head_top_k(head, 4)]
    plain = fusion_generate(model, embeds[:1], mask[:1], candidates, None, lm_weight=1.0)
    assert plain[0][0][0] in others  # only the head's candidates

    def head_score(item, step, ids):
        return head[step, ids].tolist()

    fused = fusion_generate(model, embeds[:1], mask[:1], candidates, None, lm_weight=1.0,
                            lm_top_k=3, head_score=head_score)
    assert fused[0][0] == [best]
    assert abs(fused[0][1][0] - float(head[0, best].exp())) < 1e-6  # the head's probability of what was said


@torch.no_grad()
def _exhaustive_best_with_insertions(model, prompt, head, lm_weight, bonus, top_k, insert_top_k, penalty):
    """The best transcript when a hypothesis may also insert one of the LLM's top tokens without
    reading a vector (never twice in a row), each action sequence scored from scratch."""
    embed = model.get_input_embeddings()

    def lm(ids):
        tokens = embed(torch.tensor(ids, dtype=torch.long))
        logits = model(inputs_embeds=torch.cat([prompt, tokens])[None]).logits[0, -1].float()
        return logits.log_softmax(-1).clamp_min(-100.0)

    best = [-float("inf"), None]

    def walk(i, ids, score, inserted):
        if i == len(head):
            if score > best[0] + 1e-4:
                best[0], best[1] = score, list(ids)
            return
        scores = lm(ids)
        choices = head[i].topk(top_k).indices.tolist()
        if ids and ids[-1] in choices:  # the same token fired twice
            walk(i + 1, ids, score + float(head[i][ids[-1]]), False)
        for token in choices:
            walk(i + 1, ids + [token], score + float(head[i][token]) + lm_weight * float(scores[token]) + bonus, False)
        if not inserted:
            for token in scores.topk(insert_top_k).indices.tolist():
                walk(i, ids + [token], score + lm_weight * float(scores[token]) + bonus - penalty, True)

    walk(0, [], 0.0, False)
    return best[1]


# a tiny random LLM's best tokens score about -5: these penalties make insertions win in some places
@pytest.mark.parametrize("seed,penalty", [(0, -6.0), (1, -5.0), (3, -6.0)])
def test_fusion_with_insertions_finds_the_best_scored_transcript(seed, penalty):
    # every hypothesis kept, hypotheses reading different vectors side by side: the search must find
    # what scoring every action sequence from scratch finds
    tokenizer, model, embeds, mask, heads = _fusion_inputs(seed, counts=(2, 3), vocab=3)
    out = fusion_generate(model, embeds, mask, [head_top_k(h, 2) for h in heads], None, lm_weight=1.0,
                          token_bonus=0.5, num_beams=10 ** 4, insert_top_k=2, insert_penalty=penalty)
    for b, (ids, probs) in enumerate(out):
        prompt = embeds[b][mask[b].bool()]
        assert ids == _exhaustive_best_with_insertions(model, prompt, heads[b], 1.0, 0.5, 2, 2, penalty)
        assert len(probs) == len(ids) and all(0 < p <= 1 for p in probs)
    plain = fusion_generate(model, embeds, mask, [head_top_k(h, 2) for h in heads], None, lm_weight=1.0,
                            token_bonus=0.5, num_beams=10 ** 4)
    assert out != plain  # the insertions mattered


def test_fusion_insertions_follow_their_penalty():
    tokenizer, model, embeds, mask, heads = _fusion_inputs(1)
    candidates = [head_top_k(h, 4) for h in heads]
    plain = fusion_generate(model, embeds, mask, candidates, None, lm_weight=0.3, token_bonus=2.0, num_beams=3)
    costly = fusion_generate(model, embeds, mask, candidates, None, lm_weight=0.3, token_bonus=2.0, num_beams=3,
                             insert_top_k=4, insert_penalty=1e4)
    assert costly == plain
    # rewarded instead of penalised: an insertion before every vector, never two in a row
    free = fusion_generate(model, embeds, mask, candidates, None, lm_weight=0.3, token_bonus=2.0, num_beams=3,
                           insert_top_k=4, insert_penalty=-1e3)
    assert [len(ids) for ids, _ in free] == [2 * len(h) for h in heads]


def test_cif_and_fusion_searches_read_the_spelling_score():
    torch.manual_seed(0)
    config = tiny_config(dropout=0.0)
    config.cformer = dataclasses.replace(config.cformer, spelling_dim=8, spelling_buckets=64)
    tokenizer = tiny_tokenizer()
    model = XASRModel(config, build_encoder(config.encoder), LLM(tiny_llama(tokenizer), tokenizer, config.llm)).eval()
    with torch.no_grad():
        model.adapter.speller.query.weight.normal_(std=3.0)
    batch = tiny_batch(seconds=(1.0, 0.6, 0.8), texts=("a", "b", "c"))
    with torch.no_grad():
        out = model.adapter(*model.encode(batch))
        vectors = [out.embeddings[b, :n] for b, n in enumerate(out.lengths.tolist())]
        spelled = [model.token_head(v).argmax(-1).tolist() for v in vectors]
        unspelled = [model.llm.output_embeddings(v.to(model.llm.dtype)).argmax(-1).tolist() for v in vectors]
    assert spelled != unspelled
    cif = generate(model, batch, options=GenerationOptions(search="cif", collapse_repeats=False))
    assert [r["token_ids"] for r in cif] == spelled
    cif = generate(model, batch, options=GenerationOptions(search="cif"))
    fused = generate(model, batch, num_beams=2,
                     options=GenerationOptions(search="fusion", lm_weight=0.0, token_bonus=0.0))
    assert [r["token_ids"] for r in fused] == [r["token_ids"] for r in cif]

"""Decoding policy: how a model turns a batch into token ids.

`generate` holds the searches (`greedy` with optional beams, `draft`, `cif`, `fusion`), the token
budgets the CIF count sets, the loop guard and the chat guard; the KV-cached greedy, draft and
fusion loops over the frozen LLM are below it.
"""

from __future__ import annotations

import difflib
import math
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from xasr.config import SINGLE_BEAM_SEARCHES, TOKEN_HEAD_SEARCHES, GenerationOptions
from xasr.data.batch import Batch
from xasr.llm import pad_embeddings
from xasr.model import XASRModel


@torch.no_grad()
def generate(model: XASRModel, batch: Batch, num_beams: Optional[int] = None, context: Optional[str] = None,
             options: Optional[GenerationOptions] = None) -> list[dict]:
    """Transcribe a batch: one dict per item with `text`, `token_ids` and, for the C-Former,
    `cif_tokens` and the CIF weights `alphas` (one per encoder frame, for timestamps).

    Each item may write as many tokens as its CIF fired (times a slack factor); the projector,
    which announces no count, gets a budget from the audio duration. `context` (names, topic,
    hotwords) joins the prompt but never the transcript. `num_beams` None is 1, or
    `options.fusion_beams` for the fusion search.
    """
    options = options or model.config.generation
    if num_beams is None:
        num_beams = options.fusion_beams if options.search == "fusion" else 1
    if options.search in TOKEN_HEAD_SEARCHES and model.config.adapter != "cformer":
        raise ValueError(f"search '{options.search}' reads the C-Former's token head: it needs the cformer adapter")
    if options.search in SINGLE_BEAM_SEARCHES and num_beams > 1:
        raise ValueError(f"search '{options.search}' decodes with one beam: use --beam 1 "
                         "(the fusion search takes beams)")
    features, feature_lengths = model.encode(batch)
    out = model.adapter(features, feature_lengths)
    lengths = out.lengths.tolist()
    if out.cif is not None:  # tokens the adapter announced
        expected = lengths
    else:
        expected = [math.ceil(options.tokens_per_second * n / model.encoder.frame_rate)
                    for n in feature_lengths.tolist()]
    budgets = [math.ceil(options.budget_factor * n) + options.budget_extra for n in expected]
    results = [{"id": batch.ids[b], "text": "", "token_ids": []} for b in range(len(batch.ids))]
    if out.cif is not None:
        for b, result in enumerate(results):
            result["cif_tokens"] = lengths[b]
            result["alphas"] = out.cif.alphas[b, : int(feature_lengths[b])].float().cpu()
    if options.search == "cif":  # one token per fired vector, no LLM
        for b, result in enumerate(results):
            ids, probs = cif_draft(model, out.embeddings[b, : lengths[b]], options.collapse_repeats)
            result.update(token_ids=ids, token_probs=probs, text=model.llm.template.decode(ids))
        return results
    # nothing fired: nothing was said, and an LLM given no speech would only make something up
    speaking = [b for b in range(len(results)) if lengths[b] > 0]
    if not speaking:
        return results
    template = model.llm.template_with_context(context)
    if options.search == "fusion":
        return _fusion(model, out.embeddings, lengths, speaking, batch, template, num_beams, options, results)
    speech = model._modalities([out.embeddings[b, : lengths[b]] for b in speaking], batch, speaking, template)
    drafts = {}  # (token ids, probabilities) of each item's CIF draft, for the draft search and the guard
    if out.cif is not None and (options.search == "draft" or options.min_draft_agreement > 0):
        drafts = {b: cif_draft(model, out.embeddings[b, : lengths[b]], options.collapse_repeats) for b in speaking}

    def is_looping(row: int, tokens: list[int]) -> bool:
        return len(tokens) > expected[speaking[row]] and loop_start(tokens, options.loop_repeats) is not None

    probabilities: list[list[float]] = []  # greedy search only
    if num_beams == 1 and not options.hf_generate:
        cache, embeds, mask = decoding_prompt(model, speech, template, len(speaking))
        if options.search == "draft":
            token_ids = draft_generate(model.llm.model, embeds, mask, [budgets[b] for b in speaking],
                                       template.eos_token_id, [drafts[b][0] for b in speaking],
                                       should_stop=is_looping, cache=cache,
                                       probabilities=probabilities, stats=model.generation_stats)
        else:
            token_ids = greedy_generate(model.llm.model, embeds, mask, [budgets[b] for b in speaking],
                                        template.eos_token_id, should_stop=is_looping, cache=cache,
                                        probabilities=probabilities)
            model.generation_stats["forward_passes"] = (model.generation_stats.get("forward_passes", 0)
                                                       + 1 + max((len(t) for t in token_ids), default=0))
    else:
        embeds, mask, _ = model.llm.build_inputs(speech, padding_side="left", template=template)
        token_ids = model.llm.generate(embeds, mask, max_new_tokens=max(budgets[b] for b in speaking),
                                      num_beams=num_beams)
    for row, b in enumerate(speaking):
        ids = trim_loop(token_ids[row][: budgets[b]], keep=expected[b], repeats=options.loop_repeats)
        results[b]["token_ids"] = ids
        results[b]["text"] = template.decode(ids)
        if probabilities:
            results[b]["token_probs"] = probabilities[row][: len(ids)]
        model.generation_stats["tokens"] = model.generation_stats.get("tokens", 0) + len(ids)
    if options.min_draft_agreement > 0 and drafts:
        for b in speaking:
            draft, draft_probs = drafts[b]
            agreement = word_agreement(results[b]["text"], template.decode(draft))
            results[b].update(draft_token_ids=draft, draft_agreement=agreement)
            if agreement < options.min_draft_agreement:
                results[b].update(token_ids=draft, token_probs=draft_probs, text=template.decode(draft),
                                  guarded=True)
    return results


def decoding_prompt(model: XASRModel, modalities: dict, template, rows: int):
    """(cache, inputs_embeds, attention_mask) of the decoding prompt for `rows` items: the text before
    the first placeholder comes from the LLM's prefix cache, the left padding goes between it and the
    rest, and the mask covers both."""
    cache, prefix = model.llm.prefix_cache(template, rows)
    embeds, mask, _ = model.llm.build_inputs(modalities, padding_side="left", template=template,
                                            with_prefix=cache is None)
    return cache, embeds, torch.cat([mask.new_ones(rows, prefix), mask], dim=1)


def _fusion(model: XASRModel, embeddings: torch.Tensor, lengths: list[int], speaking: list[int], batch: Batch,
            template, num_beams: int, options: GenerationOptions, results: list[dict]) -> list[dict]:
    """The `fusion` search for the items that fired (see `fusion_generate`)."""
    vectors = [embeddings[b, : lengths[b]] for b in speaking]
    if options.fusion_context == "speech":  # the decoding prompt with the speech, as greedy reads it
        modalities = model._modalities(vectors, batch, speaking, template)
        cache, embeds, mask = decoding_prompt(model, modalities, template, len(speaking))
        end = template.eos_token_id
    else:  # the LLM as a language model of plain text, from `fusion_prompt` on (after the item's picture or
        # clip in the "image" context; an item shown nothing reads the plain text), no end-of-text score
        if options.fusion_context == "image":
            visuals = model.image_embeddings(batch)
            shown = [visuals[b] for b in speaking]
        else:
            shown = [v[:0] for v in vectors]
        embeds, mask, _ = pad_embeddings(model.visual_lm_prompts(shown, options.fusion_prompt), None, "left")
        cache, end = None, None
    heads, normalisers = [], []  # [N, V] logits are held for one item at a time
    for v in vectors:
        logits = model.token_head(v)
        heads.append(head_top_k(logits, options.fusion_top_k))
        normalisers.append(logits.logsumexp(-1))
    head_score = None
    if options.fusion_lm_top_k > 0:
        def head_score(row: int, step: int, ids: list[int]) -> list[float]:
            return (model.token_head_logits(vectors[row][step], ids) - normalisers[row][step]).tolist()
    decoded = fusion_generate(model.llm.model, embeds, mask, heads, end, options.lm_weight,
                              options.token_bonus, num_beams, cache=cache, stats=model.generation_stats,
                              lm_top_k=options.fusion_lm_top_k, head_score=head_score,
                              insert_top_k=options.fusion_insert_top_k, insert_penalty=options.fusion_insert_penalty)
    for b, (ids, probs) in zip(speaking, decoded):
        results[b].update(token_ids=ids, token_probs=probs, text=template.decode(ids))
        model.generation_stats["tokens"] = model.generation_stats.get("tokens", 0) + len(ids)
    return results


def cif_draft(model: XASRModel, embeddings: torch.Tensor,
              collapse_repeats: bool = False) -> tuple[list[int], list[float]]:
    """The CIF draft of one item's vectors: the token head's argmax and its probability; with
    `collapse_repeats`, a run of one token counts once (with its highest probability)."""
    best = model.token_head(embeddings).softmax(-1).max(-1)
    ids, probs = best.indices.tolist(), best.values.tolist()
    if not collapse_repeats:
        return ids, probs
    kept_ids, kept_probs = [], []
    for token, probability in zip(ids, probs):
        if kept_ids and kept_ids[-1] == token:
            kept_probs[-1] = max(kept_probs[-1], probability)
        else:
            kept_ids.append(token)
            kept_probs.append(probability)
    return kept_ids, kept_probs


def word_agreement(text: str, other: str) -> float:
    """How far two transcripts share their words in order (difflib ratio over lowercase words, 0..1)."""
    def words(t: str) -> list[str]:
        return ["".join(ch for ch in w if ch.isalnum()) for w in t.lower().split()]

    a, b = words(text), words(other)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def loop_start(tokens: Sequence[int], repeats: int = 3, max_period: int = 64,
               long_period: int = 8) -> Optional[int]:
    """Where a loop starts when `tokens` end in one pattern repeated, the last copy possibly cut short.

    A pattern of fewer than `long_period` tokens must fill `repeats` copies; a longer one (a phrase
    or a sentence said again word for word) two. Returns the index just after the first copy (the
    repeats to drop), or None.
    """
    n = len(tokens)
    for period in range(1, min(max_period, n // 2) + 1):
        same = 0  # how many tokens at the end equal the token one period before them
        while same < n - period and tokens[n - 1 - same] == tokens[n - 1 - same - period]:
            same += 1
        copies = repeats if period < long_period else 2
        if same + period >= copies * period:
            return n - same
    return None


def trim_loop(tokens: Sequence[int], keep: int, repeats: int = 3) -> list[int]:
    """Drop a repeating tail past the first `keep` tokens (the count the speech announced)."""
    tokens = list(tokens)
    start = loop_start(tokens, repeats) if len(tokens) > keep else None
    return tokens if start is None else tokens[: max(start, keep)]


StopRule = Callable[[int, list[int]], bool]


@torch.no_grad()
def greedy_generate(model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                    max_new_tokens: Sequence[int], eos_token_id: int,
                    should_stop: Optional[StopRule] = None, cache=None,
                    probabilities: Optional[list[list[float]]] = None) -> list[list[int]]:
    """Greedy decoding with a KV cache, each item with its own token budget.

    `inputs_embeds` are left-padded; `should_stop(b, tokens)` may end item b early (a loop guard).
    `cache` holds keys/values of tokens before the inputs (a prompt prefix); `attention_mask` then
    covers those too. Items that finish leave the batch, so the cost follows the items still writing.
    Given a list, `probabilities` receives each item's token probabilities (one list per item).
    """
    batch = inputs_embeds.shape[0]
    tokens: list[list[int]] = [[] for _ in range(batch)]
    if probabilities is not None:
        probabilities[:] = [[] for _ in range(batch)]
    active = torch.arange(batch, device=inputs_embeds.device)  # rows of the cache still writing
    positions = (attention_mask.cumsum(-1) - 1).clamp_min(0)[:, -inputs_embeds.shape[1]:]
    out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                cache=cache, logits_to_keep=1)  # the prompt's other logits are never read
    cache, mask, position = out.cache, attention_mask, positions[:, -1:]
    logits = out.logits[:, -1]
    for _ in range(max(max_new_tokens, default=0)):
        next_ids = logits.argmax(-1)
        if probabilities is not None:
            chosen = logits.float().softmax(-1).gather(-1, next_ids[:, None])[:, 0].tolist()
        keep = []
        for row, b in enumerate(active.tolist()):
            token = int(next_ids[row])
            if token == eos_token_id:
                continue
            tokens[b].append(token)
            if probabilities is not None:
                probabilities[b].append(chosen[row])
            if len(tokens[b]) >= max_new_tokens[b] or (should_stop is not None and should_stop(b, tokens[b])):
                continue
            keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):
            rows = torch.tensor(keep, device=active.device)
            active, next_ids, mask, position = active[rows], next_ids[rows], mask[rows], position[rows]
            cache.batch_select_indices(rows)
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
        position = position + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=position,
                    cache=cache, use_cache=True)
        cache, logits = out.cache, out.logits[:, -1]
    return tokens


def draft_generate(model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                   max_new_tokens: Sequence[int], eos_token_id: int, drafts: Sequence[Sequence[int]],
                   should_stop: Optional[StopRule] = None, cache=None,
                   probabilities: Optional[list[list[float]]] = None, stats: Optional[dict] = None,
                   lookahead: int = 16) -> list[list[int]]:
    """Greedy decoding verified against drafts (speculative decoding): the same tokens as
    `greedy_generate`, in fewer LLM forward passes when the drafts are right.

    Each round feeds every item its pending token (the LLM's own choice) and the next `lookahead`
    tokens of its draft in one forward pass; the item keeps the draft tokens the LLM would have
    written itself, up to the first it would not, and the LLM's token there becomes the next pending
    one. Items advance by their own accepted lengths: rejected tokens stay in the KV cache but are
    masked out, and positions count only accepted tokens. After a disagreement the draft is followed
    on from the token the LLM wrote (a draft token it skipped or replaced is passed over).
    Each item's window adapts: it doubles (up to `lookahead`) after a round that accepted the whole
    proposal and shrinks to one more than the accepted length otherwise, so an LLM that ignores its
    draft costs about one greedy step per token instead of `lookahead` wasted positions per pass.
    `stats["forward_passes"]` counts the LLM calls, `stats["draft_tokens_fed"]` the draft tokens fed.
    """
    batch = inputs_embeds.shape[0]
    device = inputs_embeds.device
    tokens: list[list[int]] = [[] for _ in range(batch)]
    if probabilities is not None:
        probabilities[:] = [[] for _ in range(batch)]
    positions = (attention_mask.cumsum(-1) - 1).clamp_min(0)[:, -inputs_embeds.shape[1]:]
    out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                cache=cache, logits_to_keep=1)
    passes = 1
    cache, mask = out.cache, attention_mask
    next_position = positions[:, -1] + 1  # position of each item's next written token
    logits = out.logits[:, -1].float()
    pending = logits.argmax(-1).tolist()
    pending_prob = logits.softmax(-1).max(-1).values.tolist()
    cursor = [0] * batch  # next draft token to propose
    window = [lookahead] * batch  # draft tokens to propose next round
    fed = 0
    active = list(range(batch))  # items still writing, in the cache's row order

    def emit(b: int, token: int, probability: float) -> bool:
        """Write one token for item b; False when the item is finished."""
        if token == eos_token_id:
            return False
        tokens[b].append(token)
        if probabilities is not None:
            probabilities[b].append(probability)
        return len(tokens[b]) < max_new_tokens[b] and not (should_stop is not None and should_stop(b, tokens[b]))

    alive = [b for b in active if emit(b, pending[b], pending_prob[b])] if max(max_new_tokens, default=0) > 0 else []
    while alive:
        if len(alive) < len(active):
            rows = torch.tensor([active.index(b) for b in alive], device=device)
            cache.batch_select_indices(rows)
            mask, next_position = mask[rows], next_position[rows]
            active = alive
        proposals = [list(drafts[b][cursor[b]: cursor[b] + window[b]]) for b in active]
        fed += sum(len(p) for p in proposals)
        width = 1 + max(len(p) for p in proposals)
        block = torch.full((len(active), width), eos_token_id if eos_token_id >= 0 else 0, dtype=torch.long,
                           device=device)
        block_mask = torch.zeros(len(active), width, dtype=mask.dtype, device=device)
        for row, b in enumerate(active):
            sequence = [tokens[b][-1]] + proposals[row]
            block[row, : len(sequence)] = torch.tensor(sequence, device=device)
            block_mask[row, : len(sequence)] = 1
        block_positions = next_position[:, None] + torch.arange(width, device=device)[None]
        out = model(input_ids=block, attention_mask=torch.cat([mask, block_mask], 1), position_ids=block_positions,
                    cache=cache, use_cache=True)
        passes += 1
        cache = out.cache
        probs = out.logits.float().softmax(-1)
        best = probs.max(-1)
        choices, choice_probs = best.indices.tolist(), best.values.tolist()
        alive = []
        for row, b in enumerate(active):
            proposal = proposals[row]
            accepted, writing = 0, True
            # choices[row][k] is the LLM's token after the block's first k+1 tokens
            while writing and accepted < len(proposal) and choices[row][accepted] == proposal[accepted]:
                writing = emit(b, proposal[accepted], choice_probs[row][accepted])
                accepted += 1
            own = choices[row][accepted]
            if writing:
                writing = emit(b, own, choice_probs[row][accepted])
            window[b] = min(lookahead, 2 * window[b]) if accepted == len(proposal) else accepted + 1
            kept = 1 + accepted  # the last emitted token and the accepted draft tokens enter the cache
            block_mask[row, kept:] = 0
            next_position[row] += kept
            rest = list(drafts[b][cursor[b] + accepted:])
            skip = next((k for k, t in enumerate(rest[:3]) if t == own), None)
            cursor[b] += accepted + (skip + 1 if skip is not None else 1)
            if writing:
                alive.append(b)
        mask = torch.cat([mask, block_mask], 1)
    if stats is not None:
        stats["forward_passes"] = stats.get("forward_passes", 0) + passes
        stats["draft_tokens_fed"] = stats.get("draft_tokens_fed", 0) + fed
    return tokens


LM_FLOOR = -100.0


def head_top_k(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` most likely tokens of each token-head row [N, V]: (log-probabilities, ids), each [N, k]
    (only these are kept: a [N, V] float array per utterance would dominate the memory of a batch)."""
    top = logits.float().log_softmax(-1).topk(min(k, logits.shape[-1]), dim=-1)
    return top.values, top.indices


@torch.no_grad()
def fusion_generate(model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                    head_candidates: Sequence[tuple[torch.Tensor, torch.Tensor]], eos_token_id: Optional[int],
                    lm_weight: float, token_bonus: float = 0.0, num_beams: int = 1, cache=None,
                    stats: Optional[dict] = None, lm_top_k: int = 0,
                    head_score: Optional[Callable[[int, int, list[int]], list[float]]] = None,
                    insert_top_k: int = 0, insert_penalty: float = 5.0,
                    ) -> list[tuple[list[int], list[float]]]:
    """The CIF token head's choices rescored by the LLM as a language model (shallow fusion).

    Each hypothesis reads the fired vectors in order. At vector i it either writes one of the head's
    candidate tokens for it, scored `head + lm_weight * LLM + token_bonus` (log-probabilities; the
    LLM's given the prompt and the tokens written so far), or, where the head names the token just
    written, takes the vector as that token fired twice and writes nothing (scored by the head alone;
    with `lm_weight` and `token_bonus` 0 this is the `cif` search with collapsed repeats).
    With `insert_top_k` > 0 it may also write one of the LLM's top `insert_top_k` tokens without
    reading a vector (a token the CIF did not fire for), scored `lm_weight * LLM + token_bonus -
    insert_penalty`, never twice in a row. Given `eos_token_id`, a finished hypothesis adds
    `lm_weight` times the LLM's score for it.
    `num_beams` hypotheses per item; items and beams share one batched LLM pass per step, a
    hypothesis that wrote nothing (or has read all its vectors) feeding a masked-out token.
    `inputs_embeds` (left-padded) is each item's prompt and `head_candidates[b]` its head's top-k
    (log-probabilities [N_b, k], token ids [N_b, k]; see `head_top_k`). With `lm_top_k` > 0 each
    hypothesis may also write one of the LLM's own `lm_top_k` next tokens for the vector, scored
    alike with the head's log-probability `head_score(item, vector, ids)`: where the speech is masked
    or noisy and the head names nothing useful, a strong context (a picture) can still supply the
    word. Returns each item's tokens and the head's probability of each (the highest over a merged
    run; an inserted token has the LLM's).
    """
    device = inputs_embeds.device
    batch = inputs_embeds.shape[0]
    counts = [int(scores.shape[0]) for scores, _ in head_candidates]
    head_scores = [scores.tolist() for scores, _ in head_candidates]
    head_ids = [ids.tolist() for _, ids in head_candidates]
    results: list[tuple[list[int], list[float]]] = [([], []) for _ in range(batch)]
    positions = (attention_mask.cumsum(-1) - 1).clamp_min(0)[:, -inputs_embeds.shape[1]:]
    out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                cache=cache, logits_to_keep=1)
    passes = 1
    cache, mask = out.cache, attention_mask
    # [rows, V]: each row's next-token scores (floored: a bf16 -inf times a weight of 0 would be NaN)
    lm = out.logits[:, -1].float().log_softmax(-1).clamp_min(LM_FLOOR)
    next_position = positions[:, -1] + 1
    # one row per hypothesis: its item, tokens, their probabilities, score, the next vector it reads,
    # and whether its last token was inserted; items with no fired vector write nothing
    row_item = list(range(batch))
    row_tokens: list[list[int]] = [[] for _ in range(batch)]
    row_probs: list[list[float]] = [[] for _ in range(batch)]
    row_score = [0.0] * batch
    row_vector = [0] * batch
    row_inserted = [False] * batch
    done = {b for b in range(batch) if counts[b] == 0}
    while True:
        writing = sorted({item for item in row_item if item not in done})  # finished items' rows are dropped
        if not writing:
            break
        # per candidate: (score, parent row, token or None (nothing written), head log-prob of it or None
        # (inserted), vectors read)
        chosen = []
        for b in writing:
            candidates = []
            for r in (r for r, item in enumerate(row_item) if item == b):
                i = row_vector[r]
                if i == counts[b]:  # all vectors read: kept as it is
                    candidates.append((row_score[r], r, None, None, 0))
                    continue
                top_ids, top_scores = head_ids[b][i], head_scores[b][i]
                last = row_tokens[r][-1] if row_tokens[r] else None
                if last is not None and last in top_ids:  # the same token fired twice: write nothing
                    head = top_scores[top_ids.index(last)]
                    candidates.append((row_score[r] + head, r, None, head, 1))
                emit_lm = lm[r, top_ids].tolist()
                for token, head, said in zip(top_ids, top_scores, emit_lm):
                    candidates.append((row_score[r] + head + lm_weight * said + token_bonus, r, token, head, 1))
                if lm_top_k > 0:
                    own = [t for t in lm[r].topk(lm_top_k).indices.tolist() if t not in top_ids]
                    if own:
                        for token, head, said in zip(own, head_score(b, i, own), lm[r, own].tolist()):
                            candidates.append((row_score[r] + head + lm_weight * said + token_bonus, r, token, head, 1))
                if insert_top_k > 0 and not row_inserted[r]:
                    best = lm[r].topk(insert_top_k)
                    for token, said in zip(best.indices.tolist(), best.values.tolist()):
                        candidates.append((row_score[r] + lm_weight * said + token_bonus - insert_penalty,
                                           r, token, None, 0))
            # a stable sort keeps a merge ahead of the write it ties with (the cif search's collapse)
            candidates.sort(key=lambda c: -c[0])
            chosen.extend(candidates[:num_beams])
        parents = [c[1] for c in chosen]
        index = torch.tensor(parents, device=device)
        cache.reorder_cache(index)
        mask, next_position, lm = mask[index], next_position[index], lm[index]
        new_tokens, new_probs = [], []
        for k, (_, r, token, head, _) in enumerate(chosen):
            tokens, probs = list(row_tokens[r]), list(row_probs[r])
            if token is not None:
                tokens.append(token)
                probs.append(math.exp(head if head is not None else float(lm[k, token])))
            elif head is not None:  # a merge
                probs[-1] = max(probs[-1], math.exp(head))
            new_tokens.append(tokens)
            new_probs.append(probs)
        writes = [c[2] is not None for c in chosen]
        step_ids = torch.tensor([c[2] if c[2] is not None else 0 for c in chosen], device=device)[:, None]
        step_mask = torch.tensor(writes, dtype=mask.dtype, device=device)[:, None]
        mask = torch.cat([mask, step_mask], 1)
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=next_position[:, None], cache=cache,
                    use_cache=True)
        passes += 1
        cache = out.cache
        written = torch.tensor(writes, device=device)
        lm = torch.where(written[:, None], out.logits[:, -1].float().log_softmax(-1).clamp_min(LM_FLOOR), lm)
        next_position = next_position + written.long()
        row_item = [row_item[r] for r in parents]
        row_tokens, row_probs, row_score = new_tokens, new_probs, [c[0] for c in chosen]
        row_vector = [row_vector[r] + c[4] for r, c in zip(parents, chosen)]
        row_inserted = [c[2] is not None and c[3] is None for c in chosen]
        # items whose kept hypotheses have read every vector: the best after the LLM's end-of-text score
        for b in {b for b in row_item if b not in done}:
            rows = [r for r, item in enumerate(row_item) if item == b]
            if any(row_vector[r] < counts[b] for r in rows):
                continue
            ends = [lm_weight * float(lm[r, eos_token_id]) if eos_token_id is not None else 0.0 for r in rows]
            best = rows[max(range(len(rows)), key=lambda k: row_score[rows[k]] + ends[k])]
            results[b] = (row_tokens[best], row_probs[best])
            done.add(b)
    if stats is not None:
        stats["forward_passes"] = stats.get("forward_passes", 0) + passes
    return results

import torch

from tests.tiny import tiny_llama, tiny_tokenizer
from xasr.config import LLMConfig
from xasr.llm import IGNORE_INDEX, LLM, PromptTemplate, embedding_scale


def make_llm(**kwargs) -> LLM:
    tokenizer = tiny_tokenizer()
    return LLM(tiny_llama(tokenizer), tokenizer, LLMConfig(source="tiny", **kwargs))


def test_template_uses_chat_template_and_placeholder():
    tokenizer = tiny_tokenizer()
    template = PromptTemplate(tokenizer, "Transcribe: <speech>", "Be exact.")
    assert template.text.startswith("<|im_start|>system\nBe exact.<|im_end|>")
    assert template.text.endswith("<|im_start|>assistant\n")
    assert [s for s in template.segments if isinstance(s, str)] == ["<speech>"]
    assert template.decode(template.transcript_ids("hello world") + [template.eos_token_id]) == "hello world"


def test_build_inputs_labels_only_transcript():
    llm = make_llm()
    speech = [torch.randn(3, llm.hidden_size), torch.randn(5, llm.hidden_size)]
    targets = [llm.template.transcript_ids("hi"), llm.template.transcript_ids("yes")]
    embeds, mask, labels = llm.build_inputs({"<speech>": speech}, targets)
    prompt_length = sum(len(s) for s in llm.template.segments if not isinstance(s, str))
    lengths = [prompt_length + 3 + 2 + 1, prompt_length + 5 + 3 + 1]
    assert mask.sum(1).tolist() == lengths
    for b, target in enumerate(targets):
        supervised = labels[b][labels[b] != IGNORE_INDEX].tolist()
        assert supervised == target + [llm.template.eos_token_id]
    # the speech rows are exactly the given embeddings
    start = len(llm.template.segments[0])
    assert torch.equal(embeds[0, start:start + 3], speech[0])
    loss = llm(embeds, mask, labels).loss
    assert torch.isfinite(loss)


def test_left_padding_for_generation_and_frozen_weights():
    llm = make_llm()
    assert not any(p.requires_grad for p in llm.parameters())
    speech = [torch.randn(2, llm.hidden_size), torch.randn(6, llm.hidden_size)]
    embeds, mask, labels = llm.build_inputs({"<speech>": speech}, padding_side="left")
    assert labels is None and mask[0, 0] == 0 and mask[0, -1] == 1
    out = llm.generate(embeds, mask, max_new_tokens=4)
    assert len(out) == 2 and all(len(row) <= 4 for row in out)


def test_lora_adds_trainable_parameters_only():
    llm = make_llm(lora_rank=4, lora_target_modules=["q_proj", "v_proj"])
    trainable = [n for n, p in llm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    llm.train()
    assert llm.training


def test_embedding_scale_detects_scaled_embeddings():
    llm = make_llm()
    assert abs(embedding_scale(llm.model) - 1.0) < 1e-6
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    gemma = Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=300, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32))
    assert abs(embedding_scale(gemma) - 8.0) < 1e-3


def _speech_and_targets(llm: LLM, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    speech = [torch.randn(n, llm.hidden_size, generator=generator, requires_grad=True) for n in (3, 7, 5)]
    targets = [llm.template.transcript_ids(t) for t in ("hi", "hello there", "yes")]
    return speech, targets


def test_transcript_loss_on_the_cached_prefix_equals_the_full_forward():
    for lora_rank in (0, 4):
        llm = make_llm(lora_rank=lora_rank).eval()  # no LoRA dropout
        if lora_rank:  # LoRA B starts at zero: make the adapters matter
            with torch.no_grad():
                for name, p in llm.named_parameters():
                    if "lora_B" in name:
                        p.normal_()
        speech, targets = _speech_and_targets(llm)
        full = llm(*llm.build_inputs({"<speech>": speech}, targets)).loss
        full_grads = torch.autograd.grad(full, speech)
        cached = llm.transcript_loss({"<speech>": speech}, targets)
        cached_grads = torch.autograd.grad(cached, speech)
        assert llm.template.prefix_ids and abs(float(full) - float(cached)) < 1e-5
        for a, b in zip(full_grads, cached_grads):
            assert torch.allclose(a, b, atol=1e-6)
        if not lora_rank:  # the frozen LLM's prefix is encoded once and reused
            assert len(llm._prefix_states) == 1


def test_greedy_generation_on_the_cached_prefix_writes_the_same_tokens():
    from xasr.generation import greedy_generate

    llm = make_llm()
    speech, _ = _speech_and_targets(llm)
    speech = [s.detach() for s in speech]
    budgets = [6, 9, 4]
    eos = llm.template.eos_token_id
    embeds, mask, _ = llm.build_inputs({"<speech>": speech}, padding_side="left")
    reference = greedy_generate(llm.model, embeds, mask, budgets, eos)
    cache, prefix = llm.prefix_cache(llm.template, len(speech))
    rest, rest_mask, _ = llm.build_inputs({"<speech>": speech}, padding_side="left", with_prefix=False)
    rest_mask = torch.cat([rest_mask.new_ones(len(speech), prefix), rest_mask], dim=1)
    assert greedy_generate(llm.model, rest, rest_mask, budgets, eos, cache=cache) == reference
    assert [len(t) for t in reference] == budgets or any(len(t) < b for t, b in zip(reference, budgets))


def test_bfloat16_llm_holds_bf16_weights_and_records_the_float32_checksum():
    tokenizer = tiny_tokenizer()
    fp32 = LLM(tiny_llama(tokenizer), tokenizer, LLMConfig(source="tiny"))
    bf16 = LLM(tiny_llama(tokenizer), tokenizer, LLMConfig(source="tiny", dtype="bfloat16"))
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    assert bf16.source_checksum == fp32.source_checksum  # same source weights, whatever they are held in
    speech, targets = _speech_and_targets(fp32)
    loss32 = fp32.transcript_loss({"<speech>": speech}, targets)
    loss16 = bf16.transcript_loss({"<speech>": speech}, targets)
    assert loss16.dtype == torch.float32 and abs(float(loss16) - float(loss32)) < 0.02 * float(loss32)
    grad = torch.autograd.grad(loss16, speech[0])[0]
    assert grad.dtype == torch.float32 and grad.abs().sum() > 0


def test_explicit_bfloat16_on_a_cpu_that_emulates_it_is_warned_about(monkeypatch, caplog):
    from xasr import nn as xnn

    monkeypatch.setattr(xnn, "cpu_has_native_bf16", lambda: False)
    xnn.warn_emulated_bf16.cache_clear()
    with caplog.at_level("WARNING", logger="xasr.nn"):
        assert xnn.resolve_dtype("auto", torch.device("cpu")) == torch.float32
        assert not caplog.records
        assert xnn.resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    assert "emulated" in caplog.text
    xnn.warn_emulated_bf16.cache_clear()

import torch

from tests.tiny import tiny_llama, tiny_tokenizer
from xasr.llm import IGNORE_INDEX, LLM, LLMConfig, PromptTemplate, embedding_scale


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

"""C-Former and frame-stacking projector: shapes, lengths, no truncation, the LLM embedding scale."""

import dataclasses
import math

import pytest
import torch

from xasr.adapters import CFormer, FrameStackProjector
from xasr.config import CFormerConfig, ProjectorConfig

TINY = CFormerConfig(input_dim=12, d_model=16, n_layers=2, n_heads=2, ff_mult=2, dropout=0.0, llm_hidden_size=24)


def tiny_cformer(**changes) -> CFormer:
    torch.manual_seed(0)
    return CFormer(dataclasses.replace(TINY, **changes)).eval()


def test_shapes_with_and_without_targets():
    cformer = tiny_cformer()
    features, lengths = torch.randn(3, 40, 12), torch.tensor([40, 22, 5])
    out = cformer(features, lengths, target_lengths=torch.tensor([9, 4, 1]))
    assert out.embeddings.shape == (3, 9, 24) and out.lengths.tolist() == [9, 4, 1]
    assert out.embeddings[1, 4:].abs().sum() == 0 and out.embeddings[2, 1:].abs().sum() == 0
    assert out.cif is not None and out.cif.quantity_loss is not None
    with torch.no_grad():
        free = cformer(features, lengths)
    assert free.cif.quantity_loss is None
    assert free.lengths.tolist() == free.cif.token_lengths.tolist()
    assert free.embeddings.shape == (3, int(free.lengths.max()), 24)


def test_gradients_reach_every_parameter():
    cformer = tiny_cformer().train()
    out = cformer(torch.randn(2, 30, 12), torch.tensor([30, 18]), target_lengths=torch.tensor([6, 3]))
    (out.embeddings.pow(2).sum() + out.cif.quantity_loss).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cformer.parameters())


@pytest.mark.parametrize("growth", [{"frame_layers": 2}, {"cross_attention": True}])
def test_new_layers_start_as_the_identity_and_then_learn(growth):
    plain, grown = tiny_cformer(), tiny_cformer(**growth)
    loaded = grown.load_state_dict(plain.state_dict(), strict=False)
    assert loaded.missing_keys and not loaded.unexpected_keys
    features, lengths = torch.randn(2, 30, 12), torch.tensor([30, 17])
    with torch.no_grad():
        torch.testing.assert_close(grown(features, lengths).embeddings, plain(features, lengths).embeddings)
    zero_at_init = [grown.get_parameter(k) for k in loaded.missing_keys if k.endswith("weight")]
    zero_at_init = [p for p in zero_at_init if p.abs().sum() == 0]
    assert zero_at_init
    grown.train()
    out = grown(features, lengths, target_lengths=torch.tensor([5, 3]))
    (out.embeddings.pow(2).sum() + out.cif.quantity_loss).backward()
    assert all(p.grad.abs().sum() > 0 for p in zero_at_init)


def test_cross_attention_to_the_encoder_features_reads_them_not_the_frames():
    cformer = tiny_cformer(cross_attention=True, cross_attention_context="features")
    assert cformer.blocks[0].cross_attention.kv.in_features == 12  # the encoder's size, not d_model's
    for block in cformer.blocks:  # let the cross-attention speak (it starts as the identity)
        torch.nn.init.normal_(block.cross_attention.out.weight)
    features, lengths = torch.randn(1, 30, 12), torch.tensor([30])
    targets = torch.tensor([4])
    with torch.no_grad():
        reference = cformer(features, lengths, target_lengths=targets).embeddings
        cformer.input_proj.weight.zero_()  # frames and CIF vectors become the bias alone
        cformer.input_proj.bias.normal_()
        blind = cformer(features, lengths, target_lengths=targets).embeddings
        other = cformer(torch.randn(1, 30, 12), lengths, target_lengths=targets).embeddings
    assert not torch.allclose(blind, reference)
    assert not torch.allclose(blind, other)  # the features still reach the output, through the cross-attention


def test_unknown_cross_attention_context_is_named():
    with pytest.raises(ValueError, match="cross_attention_context 'encoder'"):
        tiny_cformer(cross_attention=True, cross_attention_context="encoder")


def test_sixty_seconds_of_frames_are_not_truncated():
    cformer = tiny_cformer()
    frames = 1500 * 2  # 60 s of Whisper frames
    features = torch.randn(1, frames, 12)
    with torch.no_grad():
        out = cformer(features, torch.tensor([frames]), target_lengths=torch.tensor([700]))
        assert out.embeddings.shape == (1, 700, 24)
        assert float(out.cif.firing_positions[0][-1]) > frames - 10  # the last token reaches the end
        free = cformer(features, torch.tensor([frames]))
    total = float(free.cif.alphas.double().sum())
    assert int(free.lengths[0]) == math.floor(total) + (total % 1 >= 0.5) > 0
    assert free.embeddings.shape[1] == int(free.lengths[0])


def test_batch_matches_single():
    cformer = tiny_cformer()
    features, lengths = torch.randn(2, 35, 12), [35, 20]
    with torch.no_grad():
        batched = cformer(features, torch.tensor(lengths))
        for b, n in enumerate(lengths):
            single = cformer(features[b:b + 1, :n], torch.tensor([n]))
            count = int(single.lengths[0])
            assert count > 0 and int(batched.lengths[b]) == count  # something fires, the same count
            torch.testing.assert_close(batched.embeddings[b, :count], single.embeddings[0], atol=1e-5, rtol=1e-5)


def test_output_carries_the_llm_embedding_scale():
    """Gemma-style LLMs scale embeddings inside the embedding module, which inputs_embeds skip."""
    from transformers import GemmaConfig, GemmaForCausalLM

    from xasr.llm import embedding_scale

    torch.manual_seed(0)
    gemma = GemmaForCausalLM(GemmaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, head_dim=8)).eval()
    ids = torch.tensor([[3, 5, 7]])
    table = gemma.get_input_embeddings().weight[ids]
    with torch.no_grad():  # the LLM does not rescale inputs_embeds: they must come already scaled
        from_ids = gemma(input_ids=ids).logits
        from_scaled_rows = gemma(inputs_embeds=table * math.sqrt(16)).logits
    torch.testing.assert_close(from_ids, from_scaled_rows)
    scale = embedding_scale(gemma)
    assert math.isclose(scale, math.sqrt(16), rel_tol=1e-5)

    features, lengths = torch.randn(1, 30, 12), torch.tensor([30])
    with torch.no_grad():
        plain = tiny_cformer(llm_hidden_size=16)(features, lengths).embeddings
        scaled = tiny_cformer(llm_hidden_size=16, llm_embedding_scale=scale)(features, lengths).embeddings
    torch.testing.assert_close(scaled, plain * scale)


def test_projector_stacks_frames():
    torch.manual_seed(0)
    config = ProjectorConfig(input_dim=12, stack=4, hidden_dim=20, llm_hidden_size=24, llm_embedding_scale=2.0)
    projector = FrameStackProjector(config).eval()
    features, lengths = torch.randn(2, 13, 12), torch.tensor([13, 6])
    out = projector(features, lengths, target_lengths=torch.tensor([3, 2]))  # targets are ignored
    assert out.embeddings.shape == (2, 4, 24) and out.lengths.tolist() == [4, 2] and out.cif is None
    assert out.embeddings[1, 2:].abs().sum() == 0
    noisy = features.clone()
    noisy[1, 6:] = 1e3  # padding frames must not leak into the last group
    torch.testing.assert_close(projector(noisy, lengths).embeddings, out.embeddings)
    single = projector(features[1:, :6], torch.tensor([6])).embeddings
    torch.testing.assert_close(out.embeddings[1, :2], single[0])
    long = projector(torch.randn(1, 3000, 12), torch.tensor([3000]))
    assert long.embeddings.shape == (1, 750, 24)

import pytest
import torch

from xasr.adapters.qformer import QFormer
from xasr.config import QFormerConfig


def tiny_qformer(**overrides) -> QFormer:
    torch.manual_seed(0)
    config = QFormerConfig(input_dim=12, d_model=16, num_queries=4, n_layers=2, n_heads=2, dropout=0.0,
                           max_frames=3, num_frames=3, llm_hidden_size=20, **overrides)
    return QFormer(config).eval()


def test_images_become_k_llm_embeddings():
    out = tiny_qformer()(torch.randn(2, 9, 12))
    assert out.embeddings.shape == (2, 4, 20)
    assert out.lengths.tolist() == [4, 4]


def test_clip_frames_past_a_clips_end_are_not_read():
    qformer = tiny_qformer()
    frames = torch.randn(2, 3, 5, 12)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = qformer(frames, mask)
    changed = frames.clone()
    changed[1, 1:] = 100 * torch.randn(2, 5, 12)  # row 1's missing frames
    changed_out = qformer(changed, mask)
    assert torch.allclose(out.embeddings, changed_out.embeddings, atol=1e-6)
    alone = qformer(frames[1:, :1])  # row 1 alone, as a one-frame clip
    assert torch.allclose(out.embeddings[1], alone.embeddings[0], atol=1e-5)


def test_frame_order_matters_for_clips():
    qformer = tiny_qformer()
    frames = torch.randn(1, 3, 5, 12)
    assert not torch.allclose(qformer(frames).embeddings, qformer(frames.flip(1)).embeddings, atol=1e-4)


def test_a_row_without_frames_gives_no_embeddings():
    out = tiny_qformer()(torch.randn(2, 2, 5, 12), torch.tensor([[True, True], [False, False]]))
    assert out.lengths.tolist() == [4, 0]
    assert out.embeddings[1].abs().sum() == 0 and out.embeddings[0].abs().sum() > 0


def test_embedding_scale_multiplies_the_output():
    features = torch.randn(1, 6, 12)
    plain = tiny_qformer()(features).embeddings
    scaled = tiny_qformer(llm_embedding_scale=3.0)(features).embeddings
    assert torch.allclose(scaled, 3.0 * plain, atol=1e-5)


def test_too_many_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="max_frames"):
        tiny_qformer()(torch.randn(1, 4, 5, 12))


def test_queries_and_layers_learn_from_the_output():
    qformer = tiny_qformer().train()
    qformer(torch.randn(2, 7, 12)).embeddings.square().sum().backward()
    silent = [name for name, p in qformer.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not silent


def test_outputs_can_match_the_llms_token_norm():
    qformer = tiny_qformer(match_token_norm=True, llm_token_norm=2.5)
    out = qformer(torch.randn(2, 6, 12)).embeddings
    assert torch.allclose(out.norm(dim=-1), torch.full((2, 4), 2.5), atol=1e-4)
    with torch.no_grad():
        qformer.output_gain.fill_(2.0)  # learned: the LLM may want them longer
    assert torch.allclose(qformer(torch.randn(1, 6, 12)).embeddings.norm(dim=-1), torch.full((1, 4), 5.0), atol=1e-4)

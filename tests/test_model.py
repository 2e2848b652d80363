"""The composed model on tiny random components: losses, generation, save/load."""

import dataclasses

import pytest
import torch

from tests.tiny import tiny_llama, tiny_tokenizer
from xasr.config import CFormerConfig, EncoderConfig, LLMConfig, LossConfig, ProjectorConfig, XASRConfig
from xasr.encoders import build_encoder
from xasr.generation import generate
from xasr.llm import LLM
from xasr.model import Batch, XASRModel

TINY_ENCODER = EncoderConfig(kind="conformer", conformer={"d_model": 32, "n_layers": 1, "n_heads": 2})


def tiny_config(adapter: str = "cformer", dropout: float = 0.1, **loss) -> XASRConfig:
    return XASRConfig(
        encoder=TINY_ENCODER,
        llm=LLMConfig(source="tiny", system_prompt="Be exact.", instruction="Transcribe: <speech>"),
        adapter=adapter,
        cformer=CFormerConfig(d_model=32, n_layers=1, n_heads=2, dropout=dropout),
        projector=ProjectorConfig(stack=4, hidden_dim=32),
        loss=LossConfig(**loss),
    )


def tiny_model(adapter: str = "cformer", seed: int = 0, dropout: float = 0.1, **loss) -> XASRModel:
    torch.manual_seed(seed)
    config = tiny_config(adapter, dropout, **loss)
    tokenizer = tiny_tokenizer()
    llm = LLM(tiny_llama(tokenizer, seed=seed), tokenizer, config.llm)
    return XASRModel(config, build_encoder(config.encoder), llm)


def tiny_batch(seconds=(1.0, 0.6), texts=("one two", "nine")) -> Batch:
    torch.manual_seed(1)
    lengths = torch.tensor([int(s * 16000) for s in seconds])
    waveforms = torch.zeros(len(seconds), int(lengths.max()))
    for i, n in enumerate(lengths.tolist()):
        waveforms[i, :n] = 0.1 * torch.randn(n)
    return Batch(ids=[f"u{i}" for i in range(len(seconds))], waveforms=waveforms, waveform_lengths=lengths,
                 texts=list(texts))


@pytest.mark.parametrize("stage, align_token", [(1, 0.0), (2, 0.0), (2, 0.5)])
def test_cformer_losses_and_gradients(stage, align_token):
    model = tiny_model(ctc=0.5, align_token=align_token).train()
    losses = model(tiny_batch(), stage=stage)
    terms = {"quantity", "ctc", "token" if stage == 1 else "llm"} | ({"token"} if align_token else set())
    assert set(losses) == terms | {"loss"} | ({"token_accuracy"} if "token" in terms else set())
    assert torch.isclose(losses["loss"], sum(losses[k] for k in terms))
    if "token" in terms:
        assert 0.0 <= float(losses["token_accuracy"]) <= 1.0
    losses["loss"].backward()
    assert model.adapter.parameters().__next__().grad is not None
    assert all(p.grad is None for p in model.llm.parameters())
    assert all(p.grad is None for p in model.encoder.parameters())


def test_projector_baseline_trains_in_stage_2_only():
    model = tiny_model("projector").train()
    assert set(model(tiny_batch(), stage=2)) == {"llm", "loss"}
    with pytest.raises(ValueError, match="C-Former"):
        model(tiny_batch(), stage=1)


def test_spoken_transcripts_are_the_targets_without_unsaid_punctuation():
    written, spoken = tiny_model(), tiny_model()
    spoken.config.llm.transcripts = "spoken"
    text = "Nine, one-two."
    assert written.transcript_ids([text]) == [written.llm.template.transcript_ids(text)]
    assert spoken.transcript_ids([text]) == [written.llm.template.transcript_ids("Nine one two")]
    with pytest.raises(ValueError, match="use 'written' or 'spoken'"):
        LLMConfig(transcripts="lowercase")


@pytest.mark.parametrize("adapter", ["cformer", "projector"])
def test_generate_returns_text_per_item(adapter):
    model = tiny_model(adapter).eval()
    batch = tiny_batch()
    batch.texts = None
    results = generate(model, batch)
    assert [r["id"] for r in results] == ["u0", "u1"]
    assert all(isinstance(r["text"], str) for r in results)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(ctc=0.3).eval()
    with torch.no_grad():
        for p in model.adapter.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = model.save_pretrained(tmp_path / "model")
    assert (path / "config.json").is_file() and (path / "adapter.safetensors").is_file()
    loaded = XASRModel.load(path, encoder=model.encoder, llm=model.llm)
    other = tiny_model(ctc=0.3, seed=5)  # a different adapter init: loading must replace it
    assert not torch.equal(other.adapter.output_proj.weight, model.adapter.output_proj.weight)
    batch = tiny_batch()
    with torch.no_grad():
        a, b = model(batch, stage=2), loaded(batch, stage=2)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    batch.texts = None
    assert generate(model, batch)[0]["token_ids"] == generate(loaded, batch)[0]["token_ids"]


@pytest.mark.parametrize("growth", [{"frame_layers": 2}, {"cross_attention": True}])
def test_load_grows_new_layers_without_changing_outputs(tmp_path, growth):
    model = tiny_model(dropout=0.0).eval()
    path = model.save_pretrained(tmp_path / "model")
    grown_config = dataclasses.replace(model.config, cformer=dataclasses.replace(model.config.cformer, **growth))
    grown = XASRModel.load(path, config=grown_config, encoder=model.encoder, llm=model.llm)
    assert len(grown.adapter.frame_blocks) == grown_config.cformer.frame_layers
    assert all(hasattr(b, "cross_attention") == grown_config.cformer.cross_attention for b in grown.adapter.blocks)
    batch = tiny_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(batch, stage=2)["llm"], grown(batch, stage=2)["llm"])
    other = dataclasses.replace(grown_config, cformer=dataclasses.replace(grown_config.cformer, d_model=16))
    with pytest.raises(ValueError, match="from scratch"):
        XASRModel.load(path, config=other, encoder=model.encoder, llm=model.llm)
    grown_path = grown.save_pretrained(tmp_path / "grown")
    shrunk = dataclasses.replace(grown_config, cformer=model.config.cformer)
    with pytest.raises(ValueError, match="from scratch"):
        XASRModel.load(grown_path, config=shrunk, encoder=model.encoder, llm=model.llm)


def test_load_grows_a_speller_that_starts_silent_and_then_shapes_the_token_head(tmp_path):
    model = tiny_model(dropout=0.0, token_negatives=16).eval()
    path = model.save_pretrained(tmp_path / "model")
    spelled = dataclasses.replace(model.config.cformer, spelling_dim=8, spelling_buckets=128)
    grown = XASRModel.load(path, config=dataclasses.replace(model.config, cformer=spelled),
                           encoder=model.encoder, llm=model.llm)
    assert grown.speller is not None and grown.speller.counts.shape[0] == model.llm.output_embeddings.weight.shape[0]
    vectors = torch.randn(5, model.llm.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(grown.token_head(vectors), model.token_head(vectors))
    grown.train()
    losses = grown(tiny_batch(), stage=1)  # sampled softmax: the speller scores the candidates only
    losses["loss"].backward()
    assert grown.speller.query.weight.grad.abs().sum() > 0
    with torch.no_grad():
        grown.speller.query.weight.normal_()
    grown.eval()
    with torch.no_grad():
        full = grown.token_head(vectors)
        assert not torch.allclose(full, model.token_head(vectors))
        ids = [3, 7, 40]
        torch.testing.assert_close(grown.token_head_logits(vectors[1], ids), full[1, ids])
    saved = XASRModel.load(grown.save_pretrained(tmp_path / "spelled"), encoder=model.encoder, llm=model.llm)
    with torch.no_grad():
        torch.testing.assert_close(saved.token_head(vectors), full)


def test_a_model_saved_with_a_float32_whisper_loads_it_in_bfloat16(tmp_path):
    from tests.encoders.test_encoders import TINY_WHISPER

    whisper = EncoderConfig(kind="whisper", hf_config=TINY_WHISPER, real_length=True)
    config = dataclasses.replace(tiny_config(), encoder=whisper)
    fast = dataclasses.replace(config, encoder=dataclasses.replace(whisper, dtype="bfloat16"))
    model = tiny_model()
    path = XASRModel(config, seeded(build_encoder, whisper), model.llm).save_pretrained(tmp_path / "model")
    loaded = XASRModel.load(path, config=fast, encoder=seeded(build_encoder, fast.encoder), llm=model.llm)
    assert {p.dtype for p in loaded.encoder.parameters()} == {torch.bfloat16}
    with pytest.raises(ValueError, match="frozen encoder weights differ"):
        XASRModel.load(path, config=fast, encoder=seeded(build_encoder, fast.encoder, seed=1), llm=model.llm)


def seeded(function, *args, seed: int = 0):
    torch.manual_seed(seed)
    return function(*args)


def test_load_refuses_different_frozen_weights(tmp_path):
    model = tiny_model()
    path = model.save_pretrained(tmp_path / "model")
    tokenizer = tiny_tokenizer()
    other_llm = LLM(tiny_llama(tokenizer, seed=99), tokenizer, model.config.llm)
    with pytest.raises(ValueError, match="frozen llm weights differ"):
        XASRModel.load(path, encoder=model.encoder, llm=other_llm)


def test_lora_adapters_round_trip(tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(), llm=dataclasses.replace(tiny_config().llm, lora_rank=2))
    tokenizer = tiny_tokenizer()
    base = tiny_llama(tokenizer)
    model = XASRModel(config, build_encoder(config.encoder), LLM(base, tokenizer, config.llm))
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    path = model.save_pretrained(tmp_path / "model")
    assert (path / "lora" / "adapter_config.json").is_file()
    fresh_llm = LLM(tiny_llama(tokenizer), tokenizer, dataclasses.replace(config.llm, lora_rank=0))
    loaded = XASRModel.load(path, encoder=model.encoder, llm=fresh_llm)
    batch = tiny_batch()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch, stage=2)["llm"], loaded(batch, stage=2)["llm"])


def test_sixty_seconds_of_audio_is_not_truncated():
    model = tiny_model().eval()
    batch = tiny_batch(seconds=(60.0,), texts=("a " * 40,))
    features, lengths = model.encode(batch)
    # the encoder keeps every frame of the minute (a truncating encoder would return fewer)
    assert int(lengths[0]) == features.shape[1] and abs(features.shape[1] - 60.0 * model.encoder.frame_rate) <= 1
    out = model.adapter(features, lengths)  # untrained CIF: what fires comes from all 60 s
    assert out.cif.alphas.shape[1] == features.shape[1] and float(out.cif.alphas[0, -100:].sum()) > 0


def test_sampled_token_loss_in_training_and_the_whole_vocabulary_in_evaluation():
    model = tiny_model(token_negatives=16).train()
    batch = tiny_batch()
    sampled = model(batch, stage=1)
    sampled["loss"].backward()
    assert model.adapter.output_proj.weight.grad is not None
    model.eval()
    full = model(batch, stage=1)
    full_model = tiny_model(token_negatives=0).eval()
    full_model.adapter.load_state_dict(model.adapter.state_dict())
    # evaluation scores against the whole vocabulary whatever token_negatives says
    torch.testing.assert_close(full["token"], full_model(batch, stage=1)["token"])
    # 16 negatives instead of ~260 tokens: the sampled softmax is easier, so its loss is lower
    torch.manual_seed(0)
    model.train()
    model.adapter.eval()  # no dropout, to compare like with like
    assert float(model(batch, stage=1)["token"]) < float(full["token"])


def test_a_saved_model_continues_under_new_training_settings(tmp_path):
    model = tiny_model()
    path = model.save_pretrained(tmp_path / "model")
    config = dataclasses.replace(model.config, loss=LossConfig(align_token=0.5),
                                 llm=dataclasses.replace(model.config.llm, lora_rank=2))
    loaded = XASRModel.load(path, encoder=model.encoder, llm=LLM(model.llm.model, model.llm.tokenizer,
                                                                  dataclasses.replace(config.llm, lora_rank=0)),
                            config=config)
    assert loaded.config.loss.align_token == 0.5 and loaded.config.llm.lora_rank == 2
    assert any("lora_" in n for n, _ in loaded.llm.named_parameters())
    for (name, a), b in zip(model.adapter.state_dict().items(), loaded.adapter.state_dict().values()):
        assert torch.equal(a, b), name
    other_adapter = dataclasses.replace(model.config, cformer=dataclasses.replace(model.config.cformer, d_model=16))
    with pytest.raises(ValueError, match="saved with cformer"):
        XASRModel.load(path, encoder=model.encoder, llm=model.llm, config=other_adapter)


# ---- images (stage 3) ----------------------------------------------------------------------------

def tiny_image_model(seed: int = 0) -> XASRModel:
    from xasr.config import QFormerConfig, VisionEncoderConfig

    torch.manual_seed(seed)
    config = dataclasses.replace(
        tiny_config(dropout=0.0), llm=LLMConfig(source="tiny", system_prompt="Be exact.",
                                                instruction="Look: <image> Transcribe: <speech>"),
        vision=VisionEncoderConfig(hf_config={"model_type": "dinov2", "hidden_size": 16, "num_hidden_layers": 1,
                                              "num_attention_heads": 2, "intermediate_size": 32, "image_size": 28,
                                              "patch_size": 14}),
        qformer=QFormerConfig(d_model=16, num_queries=3, n_layers=1, n_heads=2, dropout=0.0, max_frames=2,
                              num_frames=2))
    tokenizer = tiny_tokenizer()
    llm = LLM(tiny_llama(tokenizer, seed=seed), tokenizer, config.llm)
    return XASRModel(config, build_encoder(config.encoder), llm)


def with_images(batch: Batch, has_image=(True, True)) -> Batch:
    torch.manual_seed(2)
    batch.images = torch.randn(len(batch.ids), 1, 3, 28, 28)
    batch.image_frames = torch.tensor(has_image)[:, None]
    return batch


def test_stage3_trains_the_image_adapter_only():
    from xasr.train import trainable_parameters

    model = tiny_image_model().train()
    params = trainable_parameters(model, 3)
    assert {id(p) for p in params} == {id(p) for p in model.vision_adapter.parameters()}
    losses = model(with_images(tiny_batch()), stage=3)
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.vision_adapter.parameters())
    assert all(p.grad is None for p in model.adapter.parameters())
    assert all(p.grad is None for p in model.vision_encoder.parameters())
    both = trainable_parameters(model, 3, train_speech_adapter=True)
    assert len(both) == len(params) + len(list(model.adapter.parameters()))
    with pytest.raises(ValueError, match="no image or video adapter"):
        trainable_parameters(tiny_model(), 3)


def test_an_item_without_an_image_is_speech_only():
    model = tiny_image_model().eval()
    with torch.no_grad():
        speech_only = model(tiny_batch(), stage=3)["llm"]
        no_pictures = model(with_images(tiny_batch(), (False, False)), stage=3)["llm"]
        pictures = model(with_images(tiny_batch()), stage=3)["llm"]
    assert torch.allclose(speech_only, no_pictures)  # the image slot is empty, not a blank picture
    assert not torch.allclose(speech_only, pictures)
    embeddings = model.image_embeddings(with_images(tiny_batch(), (True, False)))
    assert [tuple(e.shape) for e in embeddings] == [(3, model.llm.hidden_size), (0, model.llm.hidden_size)]


def test_image_model_round_trips_and_a_speech_model_gains_a_fresh_image_adapter(tmp_path):
    model = tiny_image_model()
    model.save_pretrained(tmp_path / "m")
    loaded = XASRModel.load(tmp_path / "m", encoder=model.encoder, llm=model.llm, vision_encoder=model.vision_encoder)
    batch = with_images(tiny_batch())
    with torch.no_grad():
        assert torch.allclose(model.image_embeddings(batch)[0], loaded.image_embeddings(batch)[0])
        assert generate(model, batch)[0]["token_ids"] == generate(loaded, batch)[0]["token_ids"]
    speech = tiny_model(dropout=0.0)
    speech.save_pretrained(tmp_path / "speech")
    grown = XASRModel.load(tmp_path / "speech", encoder=speech.encoder, llm=speech.llm, config=model.config)
    assert grown.vision_adapter is not None
    assert all(torch.equal(a, b) for a, b in zip(grown.adapter.state_dict().values(),
                                                 speech.adapter.state_dict().values()))


def tiny_image_lm_model(seed: int = 0) -> XASRModel:
    """An image model whose prompt has no <image>: the picture reaches the LLM only as the context of
    the transcript read as plain text (loss.image_lm, the fusion search's "image" context)."""
    model = tiny_image_model(seed)
    config = dataclasses.replace(model.config, loss=LossConfig(llm=0.0, align_token=1.0, image_lm=1.0),
                                 llm=dataclasses.replace(model.config.llm, instruction="Transcribe: <speech>"))
    llm = LLM(model.llm.model, model.llm.tokenizer, config.llm)
    return XASRModel(config, model.encoder, llm, model.vision_encoder)


def test_image_lm_is_the_transcripts_cross_entropy_after_the_prompt_and_the_picture():
    from xasr.train import trainable_parameters

    model = tiny_image_lm_model().train()
    params = trainable_parameters(model, 3, train_speech_adapter=True)
    batch = with_images(tiny_batch(), (True, False))
    losses = model(batch, stage=3)
    assert {"image_lm", "token", "quantity"} <= set(losses) and "llm" not in losses
    model.eval()
    with torch.no_grad():
        loss = model(batch, stage=3)["image_lm"]
        picture = model.image_embeddings(batch)[0]
        prompt = model.llm.tokenizer(model.config.generation.fusion_prompt, add_special_tokens=False)["input_ids"]
        target = model.transcript_ids(batch.texts[:1])[0]
        embeds = torch.cat([model.llm.embed_ids(prompt), picture, model.llm.embed_ids(target)])[None]
        logits = model.llm.model(inputs_embeds=embeds).logits[0].float().log_softmax(-1)
        start = len(prompt) + len(picture) - 1  # the position that predicts the first transcript token
        expected = -torch.stack([logits[start + k, t] for k, t in enumerate(target)]).mean()
    assert torch.allclose(loss, expected, atol=1e-5)  # item 1 is shown nothing: not in the loss
    model.train()
    model(batch, stage=3)["loss"].backward()
    assert all(p.grad is not None for p in model.vision_adapter.parameters())
    assert {id(p) for p in params} >= {id(p) for p in model.vision_adapter.parameters()}
    speech_only = tiny_model()
    with pytest.raises(ValueError, match="no image or video adapter"):
        trainable_parameters(speech_only, 3)
    no_context = tiny_image_lm_model()
    no_context.config.loss.image_lm = 0.0
    with pytest.raises(ValueError, match="loss.image_lm"):
        trainable_parameters(no_context, 3)


def test_fusion_reads_the_picture_before_the_text_in_the_image_context(monkeypatch):
    import xasr.generation as generation
    from xasr.config import GenerationOptions

    model = tiny_image_lm_model().eval()
    seen = []
    real = generation.fusion_generate

    def spy(llm, embeds, mask, *args, **kwargs):
        seen.append((embeds, mask))
        return real(llm, embeds, mask, *args, **kwargs)

    monkeypatch.setattr(generation, "fusion_generate", spy)
    batch = with_images(tiny_batch(), (True, False))
    texts = {}
    for context in ("text", "image"):
        options = GenerationOptions(search="fusion", lm_weight=2.0, fusion_context=context)
        texts[context] = [r["token_ids"] for r in generate(model, batch, options=options)]
    (text_embeds, text_mask), (image_embeds, image_mask) = seen
    picture = model.image_embeddings(batch)[0]
    n = len(model.llm.tokenizer(options.fusion_prompt, add_special_tokens=False)["input_ids"])
    assert text_mask.tolist() == [[1] * n, [1] * n]  # the prompt alone
    assert image_mask.tolist() == [[1] * (n + len(picture)), [0] * len(picture) + [1] * n]  # left-padded
    assert torch.allclose(image_embeds[0, n:], picture.to(image_embeds.dtype))
    assert torch.equal(image_embeds[1, -1], text_embeds[1, -1])
    no_pictures = with_images(tiny_batch(), (False, False))
    options = GenerationOptions(search="fusion", lm_weight=2.0, fusion_context="image")
    assert [r["token_ids"] for r in generate(model, no_pictures, options=options)] == texts["text"]


def test_cached_vision_features_give_the_embeddings_the_pixels_give():
    model = tiny_image_model().eval()
    batch = with_images(tiny_batch(), (True, False))
    with torch.no_grad():
        from_pixels = model.image_embeddings(batch)
        features = model.vision_encoder(batch.images.flatten(0, 1)).view(2, 1, -1, model.vision_encoder.output_dim)
        cached = Batch(ids=batch.ids, image_features=features.half(), image_frames=batch.image_frames)
        from_features = model.image_embeddings(cached)
    assert torch.allclose(from_pixels[0], from_features[0], atol=1e-2) and len(from_features[1]) == 0


def test_a_picture_language_model_stage_reads_no_speech():
    model = tiny_image_lm_model().train()
    model.config.loss = LossConfig(quantity=0.0, llm=0.0, align_token=0.0, image_lm=1.0)
    batch = with_images(tiny_batch(), (True, False))
    batch.waveforms = batch.waveform_lengths = None  # nothing to encode: the speech is not read
    losses = model(batch, stage=3)
    assert set(losses) == {"image_lm", "loss"}
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.vision_adapter.parameters())
    none_shown = model(with_images(tiny_batch(), (False, False)), stage=3)
    assert float(none_shown["loss"]) == 0.0 and none_shown["loss"].requires_grad


def test_alignment_losses_train_the_character_head_and_the_cif_weights(tmp_path):
    model = tiny_model(dropout=0.0).eval()
    path = model.save_pretrained(tmp_path / "model")
    grown_config = dataclasses.replace(model.config, cformer=dataclasses.replace(model.config.cformer, char_ctc=True),
                                       loss=LossConfig(char_ctc=0.5, cif_align=1.0))
    grown = XASRModel.load(path, config=grown_config, encoder=model.encoder, llm=model.llm)
    batch = tiny_batch(seconds=(2.0, 1.5), texts=("one two", "nine"))
    with torch.no_grad():  # a grown character head changes no output
        torch.testing.assert_close(model(batch, stage=1)["token"], grown(batch, stage=1)["token"])
    grown.train()
    losses = grown(batch, stage=1)
    assert {"char_ctc", "cif_align"} <= set(losses) and float(losses["cif_align"]) > 0  # boundaries were found
    assert torch.isclose(losses["loss"], sum(v for k, v in losses.items() if k not in ("loss", "token_accuracy")))
    losses["loss"].backward()
    assert grown.adapter.char_head.weight.grad.abs().sum() > 0
    assert grown.adapter.cif.weight_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="cformer.char_ctc"):
        tiny_model(char_ctc=0.5)


def test_average_pretrained_writes_the_weighted_mean_of_the_trained_weights(tmp_path):
    from xasr.model import average_pretrained

    a, b = tiny_model(seed=1).eval(), tiny_model(seed=2).eval()
    path_a, path_b = a.save_pretrained(tmp_path / "a"), b.save_pretrained(tmp_path / "b")
    soup = XASRModel.load(average_pretrained([path_a, path_b], tmp_path / "soup", [3, 1]),
                          encoder=a.encoder, llm=a.llm)
    expected = 0.75 * a.adapter.output_proj.weight + 0.25 * b.adapter.output_proj.weight
    torch.testing.assert_close(soup.adapter.output_proj.weight, expected)
    even = XASRModel.load(average_pretrained([path_a, path_b], tmp_path / "even"), encoder=a.encoder, llm=a.llm)
    torch.testing.assert_close(even.adapter.output_proj.weight,
                               (a.adapter.output_proj.weight + b.adapter.output_proj.weight) / 2)
    projector = tiny_model("projector").save_pretrained(tmp_path / "projector")
    with pytest.raises(ValueError, match="do not match"):
        average_pretrained([path_a, projector], tmp_path / "bad")
    with pytest.raises(ValueError, match="one non-negative weight per model"):
        average_pretrained([path_a, path_b], tmp_path / "bad", [1.0])
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        average_pretrained([path_a, tmp_path / "none"], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()

import numpy as np
import torch

from xasr.augment import augment_cuts
from xasr.config import AudioAugmentConfig, EncoderConfig
from xasr.data.dataset import FEATURE_FIELD, SpeechTextDataset, cache_encoder_features
from xasr.encoders import build_encoder


class CountingEncoder(torch.nn.Module):
    """A conformer encoder that counts the utterances it encodes."""

    def __init__(self):
        super().__init__()
        self.inner = build_encoder(EncoderConfig(kind="conformer"))
        self.frame_rate, self.output_dim, self.encoded = self.inner.frame_rate, self.inner.output_dim, 0

    def forward(self, waveforms, lengths):
        self.encoded += len(waveforms)
        return self.inner(waveforms, lengths)


def test_cache_encodes_only_new_cuts_and_writes_exactly_the_given_set(tmp_path):
    from tests.test_train import tiny_cuts

    (tmp_path / "audio").mkdir()
    cuts = tiny_cuts(tmp_path / "audio", n=8)
    encoder = CountingEncoder().eval()
    first = cache_encoder_features(encoder, cuts.subset(first=5), tmp_path / "cache")
    assert encoder.encoded == 5 and [c.id for c in first] == [c.id for c in cuts.subset(first=5)]
    grown = cache_encoder_features(encoder, cuts.subset(last=6), tmp_path / "cache")
    assert encoder.encoded == 5 + 3  # utt5..utt7 only
    assert [c.id for c in grown] == [c.id for c in cuts.subset(last=6)]  # the given order, utt0/utt1 left out
    assert (tmp_path / "cache" / "features.1.h5").is_file()
    by_id = {c.id: c for c in first}
    for cut in grown:
        features = cut.load_custom(FEATURE_FIELD)
        assert features.dtype == np.float16 and features.ndim == 2
        if cut.id in by_id:
            assert np.array_equal(features, by_id[cut.id].load_custom(FEATURE_FIELD))
    from lhotse import CutSet

    assert [c.id for c in CutSet.from_file(tmp_path / "cache" / "cuts.jsonl.gz")] == [c.id for c in grown]
    cache_encoder_features(encoder, cuts.subset(last=6), tmp_path / "cache")
    assert encoder.encoded == 8


def test_a_cache_made_in_a_relative_folder_loads_from_any_working_directory(tmp_path, monkeypatch):
    from lhotse import CutSet

    from tests.test_train import tiny_cuts

    (tmp_path / "audio").mkdir()
    (tmp_path / "elsewhere").mkdir()
    cuts = tiny_cuts(tmp_path / "audio", n=2)
    monkeypatch.chdir(tmp_path)
    cache_encoder_features(CountingEncoder().eval(), cuts, "cache")
    monkeypatch.chdir(tmp_path / "elsewhere")
    for cut in CutSet.from_file(tmp_path / "cache" / "cuts.jsonl.gz"):
        assert cut.load_custom(FEATURE_FIELD).ndim == 2


def test_a_stopped_cache_run_resumes_from_its_last_checkpoint(tmp_path):
    from lhotse import CutSet

    from tests.test_train import tiny_cuts
    from xasr.data.dataset import PARTIAL_MANIFEST

    class StoppingEncoder(CountingEncoder):
        def forward(self, waveforms, lengths):
            if self.encoded == 5:
                raise KeyboardInterrupt  # the run is stopped while encoding the third checkpoint's cuts
            return super().forward(waveforms, lengths)

    (tmp_path / "audio").mkdir()
    cuts = tiny_cuts(tmp_path / "audio", n=8)
    cache = tmp_path / "cache"
    stopped = StoppingEncoder().eval()
    try:
        cache_encoder_features(stopped, cuts, cache, batch_duration=0.01, checkpoint_every=2)
    except KeyboardInterrupt:
        pass
    assert stopped.encoded == 5 and not (cache / "cuts.jsonl.gz").exists()
    assert len(CutSet.from_file(cache / PARTIAL_MANIFEST)) == 4  # two checkpoints of two cuts
    encoder = CountingEncoder().eval()
    resumed = cache_encoder_features(encoder, cuts, cache, batch_duration=0.01, checkpoint_every=2)
    assert encoder.encoded == 4 and not (cache / PARTIAL_MANIFEST).exists()
    assert [c.id for c in CutSet.from_file(cache / "cuts.jsonl.gz")] == [c.id for c in cuts]
    assert all(c.load_custom(FEATURE_FIELD).ndim == 2 for c in resumed)


def test_mixed_augmented_cuts_are_cached_as_plain_cuts_with_their_text(tmp_path):
    from tests.test_train import tiny_cuts

    (tmp_path / "audio").mkdir()
    cuts = tiny_cuts(tmp_path / "audio", n=4)
    talker = AudioAugmentConfig(talker_prob=1.0, noise_prob=0.0)
    augmented = augment_cuts(cuts, talker, seed=3)
    assert any(type(c).__name__ == "MixedCut" for c in augmented)
    cached = cache_encoder_features(CountingEncoder().eval(), augmented, tmp_path / "cache")
    batch = SpeechTextDataset()[cached]
    assert batch.features is not None and sorted(batch.texts) == sorted(c.supervisions[0].text for c in cuts)
    assert sorted(batch.ids) == sorted(c.id for c in augmented)


def test_cuts_bring_their_pictures_and_a_bad_one_leaves_the_item_speech_only(tmp_path, caplog):
    from lhotse import CutSet
    from PIL import Image

    from tests.test_train import tiny_cuts
    from xasr.data.dataset import SpeechTextDataset

    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "red.png")
    (tmp_path / "bad.png").write_text("no picture")
    cuts = list(tiny_cuts(tmp_path, n=3))
    for cut, picture in zip(cuts, ["red.png", "bad.png", None]):
        if picture:
            cut.supervisions[0].custom = {**(cut.supervisions[0].custom or {}), "image": str(tmp_path / picture)}

    def pixels(path):
        from xasr.encoders.vision import load_image

        return torch.from_numpy(load_image(path)).permute(2, 0, 1).float()

    dataset = SpeechTextDataset(image_pixels=pixels)
    batch = dataset[CutSet.from_cuts(cuts)]
    has_picture = dict(zip(batch.ids, batch.image_frames[:, 0].tolist()))
    assert has_picture == {cuts[0].id: True, cuts[1].id: False, cuts[2].id: False}
    assert batch.images.shape == (3, 1, 3, 8, 8)
    assert list(dataset.image_failures) == [str(tmp_path / "bad.png")] and "bad.png" in caplog.text
    assert SpeechTextDataset()[CutSet.from_cuts(cuts)].images is None


def _cache_on_rank(rank: int, world_size: int, port: int, manifest: str, cache: str) -> None:
    import os

    from lhotse import CutSet

    from xasr.distributed import DistributedContext

    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ranks = DistributedContext("cpu")
    cache_encoder_features(CountingEncoder().eval(), CutSet.from_file(manifest), cache, batch_duration=0.5,
                           checkpoint_every=2, ranks=ranks)
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_cache_what_one_process_caches(tmp_path):
    import socket

    from lhotse import CutSet

    from tests.test_train import tiny_cuts

    (tmp_path / "audio").mkdir()
    cuts = tiny_cuts(tmp_path / "audio", n=9)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    torch.manual_seed(0)
    one = cache_encoder_features(CountingEncoder().eval(), cuts, tmp_path / "one", batch_duration=0.5,
                                 checkpoint_every=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_cache_on_rank, args=(2, port, str(tmp_path / "cuts.jsonl.gz"), str(tmp_path / "two")),
                                nprocs=2)
    two = CutSet.from_file(tmp_path / "two" / "cuts.jsonl.gz")
    assert [c.id for c in two] == [c.id for c in cuts]  # input order
    for a, b in zip(one, two):  # other batches, other padding: equal up to float16 rounding
        a, b = a.load_custom(FEATURE_FIELD).astype(np.float32), b.load_custom(FEATURE_FIELD).astype(np.float32)
        assert a.shape == b.shape and np.abs(a - b).max() <= 4e-3 * max(1.0, np.abs(a).max())
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert "cuts.jsonl.gz" in files and not [f for f in files if f.startswith("cuts.partial")]
    assert any(f.startswith("features.rank0.") for f in files) and any(f.startswith("features.rank1.") for f in files)


def _colour_frames(count):
    return [np.full((8, 8, 3), 30 * i, dtype=np.uint8) for i in range(count)]


def _write_clips(tmp_path):
    """The same 6-frame clip as a folder of frames, an animated GIF and an mp4 (PyAV)."""
    from PIL import Image

    frames = _colour_frames(6)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:02d}.png")
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(tmp_path / "clip.gif", save_all=True, append_images=pictures[1:], duration=100)
    clips = {"folder": folder, "gif": tmp_path / "clip.gif"}
    try:
        import av
    except ImportError:
        return clips
    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            big = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clips["mp4"] = tmp_path / "clip.mp4"
    return clips


def test_clips_are_read_from_a_frame_folder_an_animated_image_or_a_video_file(tmp_path):
    from xasr.encoders.vision import load_frames

    clips = _write_clips(tmp_path)
    for kind, path in clips.items():
        frames = load_frames(path, 3)
        assert len(frames) == 3, kind
        means = [float(f.mean()) for f in frames]
        assert means[0] < means[1] < means[2], kind  # first, middle and last frame, in order
        assert abs(means[0] - 0) < 8 and abs(means[2] - 150) < 8, kind
    assert len(load_frames(clips["folder"], 10)) == 6  # a short clip gives what it has


def test_cuts_bring_their_clips_padded_per_batch_and_a_bad_clip_leaves_the_item_speech_only(tmp_path, caplog):
    from lhotse import CutSet

    from tests.test_train import tiny_cuts
    from xasr.data.dataset import PictureReader

    clips = _write_clips(tmp_path)
    (tmp_path / "empty").mkdir()
    cuts = list(tiny_cuts(tmp_path, n=3))
    for cut, clip in zip(cuts, [clips["folder"], tmp_path / "empty", None]):
        if clip is not None:
            cut.supervisions[0].custom = {**(cut.supervisions[0].custom or {}), "video": str(clip)}

    def pixels(image):
        from xasr.encoders.vision import load_image

        return torch.from_numpy(load_image(image)).permute(2, 0, 1).float()

    dataset = SpeechTextDataset(pictures=PictureReader(pixels, num_frames=4))
    batch = dataset[CutSet.from_cuts(cuts)]
    order = {cut_id: b for b, cut_id in enumerate(batch.ids)}
    assert batch.images.shape == (3, 4, 3, 8, 8)
    assert batch.image_frames[order[cuts[0].id]].tolist() == [True] * 4
    assert not batch.image_frames[order[cuts[1].id]].any() and not batch.image_frames[order[cuts[2].id]].any()
    assert [v.kind if v else None for v in batch.visuals] == [
        "video" if b == order[cuts[0].id] else None for b in range(3)]
    assert "empty" in caplog.text and list(dataset.image_failures) == [str(tmp_path / "empty")]


def test_vision_features_are_computed_once_per_picture_and_kept_on_disk(tmp_path):
    from PIL import Image

    from xasr.data.batch import Batch, Visual
    from xasr.data.dataset import PictureReader
    from xasr.encoders.vision import VisionFeatureCache

    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "blue.png")
    calls = []

    def encode(pixels):
        calls.append(len(pixels))
        return pixels.flatten(2).transpose(1, 2)[:, :5]  # [T, N=5, D=3]

    def pixels(image):
        from xasr.encoders.vision import load_image

        return torch.from_numpy(load_image(image)).permute(2, 0, 1).float() / 255

    picture = Visual("image", str(tmp_path / "blue.png"))
    reader = PictureReader(pixels, encode=encode, feature_cache=VisionFeatureCache(tmp_path / "cache", tag="t"))
    first = reader.fill(Batch(ids=["a", "b"]), [picture, None])
    reader.fill(Batch(ids=["c"]), [picture])
    assert calls == [1] and first.images is None and first.image_features.shape == (2, 1, 5, 3)
    assert first.image_frames.tolist() == [[True], [False]]
    again = PictureReader(pixels, encode=encode, feature_cache=VisionFeatureCache(tmp_path / "cache", tag="t"))
    assert torch.equal(again.fill(Batch(ids=["a"]), [picture]).image_features[0], first.image_features[0])
    assert calls == [1]  # a new run reads the stored features
    other = PictureReader(pixels, encode=encode, feature_cache=VisionFeatureCache(tmp_path / "cache", tag="u"))
    other.fill(Batch(ids=["a"]), [picture])
    assert calls == [1, 1]  # another encoder's features are not taken

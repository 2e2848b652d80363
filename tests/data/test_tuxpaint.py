import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet
from PIL import Image
from typer.testing import CliRunner

from xasr.cli import app
from xasr.data.tts import read_sentences
from xasr.data.dataset import image_of
from xasr.data.tuxpaint import attach_images, prepare_tuxpaint, read_stamps


@pytest.fixture
def stamps_dir(tmp_path):
    root = tmp_path / "stamps"
    (root / "animals" / "birds").mkdir(parents=True)
    (root / "food").mkdir()
    speech = 0.1 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    for folder, name, caption in [("animals/birds", "crow", "A crow.\nfr.utf8=Un corbeau."),
                                  ("food", "apple", "An apple."), ("food", "pear", "A pear.")]:
        (root / folder / f"{name}.txt").write_text(caption + "\n")
        Image.new("RGB", (20, 10), (200, 30, 30)).save(root / folder / f"{name}.png")
    sf.write(root / "animals/birds/crow_desc.ogg", speech, 16000)
    sf.write(root / "food/apple_desc.ogg", speech, 16000)
    (root / "food/pear_desc.ogg").write_bytes(b"")  # unreadable: skipped, named
    (root / "food/plum.txt").write_text("A plum.\n")  # no picture: not a stamp here
    (root / "food/empty.txt").write_text("")
    Image.new("RGB", (4, 4)).save(root / "food/empty.png")
    return root


def test_stamps_have_captions_pictures_and_maybe_speech(stamps_dir):
    stamps = read_stamps(stamps_dir)
    assert [(s.id, s.caption, s.spoken is not None) for s in stamps] == [
        ("animals_birds_crow", "A crow.", True), ("food_apple", "An apple.", True), ("food_pear", "A pear.", True)]
    assert stamps[0].image == (stamps_dir / "animals/birds/crow.png").resolve()


def test_spoken_captions_carry_their_picture(stamps_dir):
    split = prepare_tuxpaint(stamps_dir)["test"]
    assert len(split) == 2 and len(split.skipped) == 1 and "pear_desc.ogg" in split.skipped[0]
    cuts = split.cuts
    assert [c.supervisions[0].text for c in cuts] == ["A crow.", "An apple."]
    assert image_of(cuts[0]).endswith("animals/birds/crow.png")


def test_synthetic_caption_cuts_get_their_stamps_pictures(stamps_dir):
    from lhotse import MonoCut, SupervisionSegment

    stamps = read_stamps(stamps_dir)
    cut = MonoCut(id="tts-espeak-food_apple-0", start=0, duration=1, channel=0, supervisions=[
        SupervisionSegment(id="s", recording_id="r", start=0, duration=1, text="An apple.",
                           custom={"sentence_id": "food_apple"})])
    assert image_of(attach_images(CutSet.from_cuts([cut]), stamps)[0]).endswith("food/apple.png")
    stranger = cut.with_id("x")
    stranger.supervisions = [stranger.supervisions[0].with_custom("sentence_id", "food_kiwi")]
    with pytest.raises(ValueError, match="food_kiwi"):
        attach_images(CutSet.from_cuts([stranger]), stamps)


def test_cli_writes_manifests_and_captions(stamps_dir, tmp_path):
    out = tmp_path / "data"
    result = CliRunner().invoke(app, ["prepare", "tuxpaint", str(out), "--stamps-dir", str(stamps_dir)])
    assert result.exit_code == 1 and "pear_desc.ogg: empty file" in result.output  # the rest is written
    assert [i for i, _ in read_sentences(out / "tuxpaint_captions.tsv")] == [
        "animals_birds_crow", "food_apple", "food_pear"]
    assert len(CutSet.from_file(out / "tuxpaint_cuts_test.jsonl.gz")) == 2
    result = CliRunner().invoke(app, ["prepare", "tuxpaint", str(out), "--stamps-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "tuxpaint-stamps-default" in result.output

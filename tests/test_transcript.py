import subprocess
import sys

from xasr.transcript import Segment, Transcript, Word


def test_transcript_types_and_writers_import_without_torch():
    code = "import sys, xasr.transcript, xasr.writers; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_transcript_dict_carries_words_with_probability_and_the_error():
    t = Transcript(id="a", text="hi you", duration=2.0, decode_seconds=0.5, error=None,
                   segments=[Segment(0.0, 2.0, "hi you", [Word("hi", 0.1, 0.4, 0.9), Word("you", 0.5, 0.9)])])
    data = t.to_dict()
    assert data["words"] == [{"word": "hi", "start": 0.1, "end": 0.4, "probability": 0.9},
                             {"word": "you", "start": 0.5, "end": 0.9, "probability": None}]
    assert data["timing"]["rtf"] == 0.25 and "error" not in data
    assert Transcript(id="b", error="b.wav: not audio").to_dict()["error"] == "b.wav: not audio"

import json
import random
from pathlib import Path

import jiwer
import kaldialign
import pytest
from lhotse import AudioSource, CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from typer.testing import CliRunner

from xasr.cli import app
from xasr.score import (
    TABLE_HEADER,
    Reference,
    default_set_name,
    format_errs,
    format_recogs,
    format_wer_summary,
    load_hypotheses,
    load_references,
    result_table_row,
    score,
    write_reports,
)

FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd"

# Hand-made example: a1 sub + del, a2 ins, a3 two successive subs, b1 missing, zz extra.
REFS = {
    "a1": Reference("The cat sat on the mat.", "ann"),
    "a2": Reference("Hello world", "bob"),
    "a3": Reference("I like green apples", "ann"),
    "b1": Reference("Good morning", "bob"),
}
HYPS = {"a1": "the cat sit on mat", "a2": "hello big world", "a3": "i like greene apple", "zz": "extra"}

# Derived by hand from icefall's write_error_stats / store_transcripts (kaldialign alignment,
# successive errors combined, sections sorted by (count, key) descending).
GOLDEN_ERRS = """\
%WER = 50.00
Errors: 1 insertions, 3 deletions, 3 substitutions, over 14 reference words (8 correct)
Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, DELETIONS:, INSERTIONS:, PER-WORD STATS:

PER-UTT DETAILS: corr or (ref->hyp)  
a1:\tthe cat (sat->sit) on (the->*) mat
a2:\thello (*->big) world
a3:\ti like (green apples->greene apple)
b1:\t(good morning->*)

SUBSTITUTIONS: count ref -> hyp
1   sat -> sit
1   green -> greene
1   apples -> apple

DELETIONS: count ref
1   the
1   morning
1   good

INSERTIONS: count hyp
1   big

PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp
the   1 1 2 1
sit   0 1 0 1
sat   0 1 1 0
morning   0 1 1 0
greene   0 1 0 1
green   0 1 1 0
good   0 1 1 0
big   0 1 0 1
apples   0 1 1 0
apple   0 1 0 1
world   1 0 1 1
on   1 0 1 1
mat   1 0 1 1
like   1 0 1 1
i   1 0 1 1
hello   1 0 1 1
cat   1 0 1 1
"""

GOLDEN_RECOGS = """\
a1:\tref=['the', 'cat', 'sat', 'on', 'the', 'mat']
a1:\thyp=['the', 'cat', 'sit', 'on', 'mat']
a2:\tref=['hello', 'world']
a2:\thyp=['hello', 'big', 'world']
a3:\tref=['i', 'like', 'green', 'apples']
a3:\thyp=['i', 'like', 'greene', 'apple']
b1:\tref=['good', 'morning']
b1:\thyp=[]
"""


def counts(result):
    t = result.totals
    return t.substitutions, t.deletions, t.insertions


def test_golden_icefall_reports():
    result = score(REFS, HYPS)
    assert (result.level, result.normalizer) == ("word", "english")
    assert format_errs(result) == GOLDEN_ERRS
    assert format_recogs(result) == GOLDEN_RECOGS
    assert format_wer_summary(result, "greedy") == "settings\tWER\ngreedy\t50.0\n"  # icefall writes float(...)


def test_write_reports_files_and_tables(tmp_path):
    result = score(REFS, HYPS)
    paths = write_reports(result, tmp_path / "out", "test", "greedy")
    assert [p.name for p in paths] == [
        "recogs-test-greedy.txt", "errs-test-greedy.txt", "wer-summary-test-greedy.txt", "results-test-greedy.md",
        "scores-test-greedy.json",
    ]
    assert paths[0].read_bytes() == GOLDEN_RECOGS.encode()
    assert paths[1].read_bytes() == GOLDEN_ERRS.encode()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)  # no temp files
    row = "|test|4|14|57.1|21.4|21.4|7.1|50.0|100.0|"
    assert result_table_row(result, "test") == row
    md = paths[3].read_text()
    assert f"{TABLE_HEADER}\n{row}\n" in md
    assert "|speaker|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|" in md
    assert "|ann|2|10|60.0|30.0|10.0|0.0|40.0|100.0|" in md
    assert "|bob|2|4|50.0|0.0|50.0|25.0|75.0|100.0|" in md
    assert "- b1" in md and "- zz" in md
    scores = json.loads(paths[4].read_text())
    assert (scores["metric"], scores["error_rate"], scores["table_row"], scores["missing"]) == ("WER", 50.0, row, 1)
    assert scores["counts"]["errors"] == 7 and scores["speakers"]["bob"]["deletions"] == 2


def test_counts_sub_del_ins():
    refs = {"u": "a b c d"}
    assert counts(score(refs, {"u": "a x c d"}, normalizer="none")) == (1, 0, 0)
    assert counts(score(refs, {"u": "a c d"}, normalizer="none")) == (0, 1, 0)
    assert counts(score(refs, {"u": "a b c d e"}, normalizer="none")) == (0, 0, 1)
    result = score(refs, {"u": "a b c d"}, normalizer="none")
    assert result.error_rate == 0.0 and result.totals.correct == 4 and result.totals.sentence_errors == 0


def test_missing_hypothesis_is_all_deletions_and_listed():
    result = score({"u1": "one two", "u2": "three four five"}, {"u1": "one two"})
    assert counts(result) == (0, 3, 0)
    assert result.missing == ["u2"]
    assert result.utterances[1].missing and result.utterances[1].hyp == []
    assert result.totals.words == 5 and result.totals.sentences == 2


def test_extra_hypothesis_is_listed_not_scored():
    result = score({"u1": "a b"}, {"u1": "a b", "other": "x y z"}, normalizer="none")
    assert counts(result) == (0, 0, 0)
    assert result.extra == ["other"]
    assert [u.id for u in result.utterances] == ["u1"]


def test_empty_reference_and_empty_hypothesis():
    result = score({"e": "", "f": "a b"}, {"e": "x y", "f": ""}, normalizer="none")
    assert counts(result) == (0, 2, 2)
    assert result.totals.words == 2 and result.error_rate == 200.0
    assert "e:\t(*->x y)\n" in format_errs(result) and "f:\t(a b->*)\n" in format_errs(result)
    both_empty = score({"e": "", "f": "a"}, {"e": "", "f": "a"}, normalizer="none")
    assert both_empty.error_rate == 0.0 and "e:\t\n" in format_errs(both_empty)
    with pytest.raises(ValueError, match="nothing to score"):
        score({"e": "um"}, {"e": "x"})  # empty after normalising


def test_chinese_cer():
    result = score({"c1": "今天天气很好。", "c2": "我们去公园"}, {"c1": "今天天汽很好啊", "c2": "我们去公园。"})
    assert (result.level, result.normalizer, result.metric) == ("char", "chinese", "CER")
    assert counts(result) == (1, 0, 1) and result.totals.words == 11
    assert "c1:\tref=['今', '天', '天', '气', '很', '好']\n" in format_recogs(result)
    assert result.summary() == "%CER 18.18 [2 / 11, 1 ins, 0 del, 1 sub] on 2 utterances"
    # spaces never count at char level
    assert counts(score({"u": "ab cd"}, {"u": "a bcd"}, level="char", normalizer="none")) == (0, 0, 0)


def test_bad_level_or_normalizer():
    with pytest.raises(ValueError, match="unknown level 'chars'"):
        score({"u": "a"}, {}, level="chars")
    with pytest.raises(ValueError, match="unknown normalizer 'fr'"):
        score({"u": "a"}, {}, normalizer="fr")


def test_total_errors_equal_edit_distance():
    rng = random.Random(0)
    vocab = "a b c d e f".split()
    refs, hyps = {}, {}
    for i in range(300):
        refs[f"u{i}"] = " ".join(rng.choices(vocab, k=rng.randint(0, 8)))
        hyps[f"u{i}"] = " ".join(rng.choices(vocab, k=rng.randint(0, 8)))
    refs["u0"] = "a b c"
    result = score(refs, hyps, normalizer="none")
    distance = sum(kaldialign.edit_distance(r.split(), h.split())["total"]
                   for r, h in zip(refs.values(), hyps.values()))
    jiwer_errors = 0
    for r, h in zip(refs.values(), hyps.values()):
        out = jiwer.process_words(r, h)
        jiwer_errors += out.substitutions + out.deletions + out.insertions
    assert result.totals.errors == distance == jiwer_errors
    # every report uses the one alignment
    t = result.totals
    counts = f"Errors: {t.insertions} insertions, {t.deletions} deletions, {t.substitutions} substitutions"
    assert counts in format_errs(result)
    assert sum(c.errors for c in result.speakers.values()) == t.errors


# ---------------------------------------------------------------- reading files


def write_manifests(tmp_path):
    sups = [
        SupervisionSegment("r1-s", "r1", 0.0, 1.0, text="Hello world", speaker="ann"),
        SupervisionSegment("r2-s", "r2", 0.0, 1.0, text="good morning", speaker="bob"),
    ]
    recs = [
        Recording(r, [AudioSource("file", [0], f"{r}.wav")], sampling_rate=16000, num_samples=16000, duration=1.0)
        for r in ["r1", "r2"]
    ]
    SupervisionSet.from_segments(sups).to_file(tmp_path / "sup.jsonl.gz")
    RecordingSet.from_recordings(recs).to_file(tmp_path / "rec.jsonl.gz")
    CutSet.from_manifests(RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups)).to_file(
        tmp_path / "cuts.jsonl.gz"
    )


def test_load_references_from_supervisions_cuts_and_tsv(tmp_path):
    write_manifests(tmp_path)
    sup = load_references(tmp_path / "sup.jsonl.gz")
    assert sup == {"r1-s": Reference("Hello world", "ann"), "r2-s": Reference("good morning", "bob")}
    cuts = load_references(tmp_path / "cuts.jsonl.gz")
    assert sorted(cuts) == sorted(c.id for c in CutSet.from_file(tmp_path / "cuts.jsonl.gz"))
    assert sorted((r.text, r.speaker) for r in cuts.values()) == [("Hello world", "ann"), ("good morning", "bob")]
    (tmp_path / "transcripts.tsv").write_text("audio/x1.wav\tann\tHello  there\nsub/x2.flac\tbob\tbye\n")
    tsv = load_references(tmp_path / "transcripts.tsv")
    assert tsv == {"x1": Reference("Hello there", "ann"), "x2": Reference("bye", "bob")}
    assert load_references(tmp_path) == tsv  # a folder with transcripts.tsv


def test_load_hypotheses_both_formats(tmp_path):
    (tmp_path / "h.jsonl").write_text(
        '{"id": "u1", "text": "Hello  world", "score": -1.5}\n\n{"id": "u2", "text": ""}\n{"id": 7, "text": "x"}\n'
    )
    assert load_hypotheses(tmp_path / "h.jsonl") == {"u1": "Hello world", "u2": "", "7": "x"}
    (tmp_path / "text").write_text("u1 Hello world\nu2\nu3\tspaced   out \n")
    assert load_hypotheses(tmp_path / "text") == {"u1": "Hello world", "u2": "", "u3": "spaced out"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": "u1", "text": "a"}\n{"id": "u2", "text": "b"\n', r"h\.jsonl:2: not valid JSON"),
        ('{"id": "u1", "text": "a"}\n{"id": "u2"}\n', r"h\.jsonl:2: missing 'id' or 'text'"),
        ('{"id": "u1", "text": null}\n', r"h\.jsonl:1: 'text' must be a string"),
        ('{"id": "u1", "text": "a"}\n{"id": "u1", "text": "b"}\n', r"h\.jsonl:2: utterance id 'u1' repeats line 1"),
    ],
)
def test_malformed_hypotheses(tmp_path, content, message):
    (tmp_path / "h.jsonl").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_hypotheses(tmp_path / "h.jsonl")


def test_bad_input_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.jsonl: no such file"):
        load_hypotheses(tmp_path / "absent.jsonl")
    with pytest.raises(FileNotFoundError, match="absent.tsv: no such file; give a lhotse"):
        load_references(tmp_path / "absent.tsv")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        load_hypotheses(tmp_path / "empty.txt")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(ValueError, match="empty.tsv is empty"):
        load_references(tmp_path / "empty.tsv")
    (tmp_path / "hyps.jsonl").write_text('{"id": "u1", "text": "a"}\n')
    with pytest.raises(ValueError, match="not a lhotse SupervisionSet or CutSet manifest"):
        load_references(tmp_path / "hyps.jsonl")
    write_manifests(tmp_path)
    with pytest.raises(ValueError, match="holds a RecordingSet; pass the supervisions or cuts manifest"):
        load_references(tmp_path / "rec.jsonl.gz")
    (tmp_path / "notes.txt").write_text("just some words\n")
    with pytest.raises(ValueError, match="unrecognised reference format"):
        load_references(tmp_path / "notes.txt")
    (tmp_path / "fake.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="fake.jsonl.gz: cannot be read"):
        load_references(tmp_path / "fake.jsonl.gz")


def test_default_set_name(tmp_path):
    assert default_set_name("data/fsdd_supervisions_test.jsonl.gz") == "fsdd_supervisions_test"
    assert default_set_name("refs.tsv") == "refs"
    assert default_set_name(tmp_path / "mycorpus" / "transcripts.tsv") == "mycorpus"


# ---------------------------------------------------------------- CLI

runner = CliRunner()


def write_example(tmp_path):
    lines = [f"{k}.wav\t{r.speaker}\t{r.text}" for k, r in REFS.items()]
    (tmp_path / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "hyps.jsonl").write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in HYPS.items()))
    return str(tmp_path / "transcripts.tsv"), str(tmp_path / "hyps.jsonl")


def test_cli_score_writes_reports(tmp_path):
    ref, hyp = write_example(tmp_path)
    result = runner.invoke(app, ["score", ref, hyp, "--output-dir", str(tmp_path / "out"), "--name", "dev",
                                 "--suffix", "greedy"])
    assert result.exit_code == 0, result.output
    assert "%WER 50.00 [7 / 14, 1 ins, 3 del, 3 sub] on 4 utterances" in result.output
    assert "missing hypotheses: 1" in result.output
    assert (tmp_path / "out" / "errs-dev-greedy.txt").read_text() == GOLDEN_ERRS
    assert f"wrote {tmp_path / 'out' / 'results-dev-greedy.md'}" in result.output


def test_cli_score_summary_only(tmp_path):
    ref, hyp = write_example(tmp_path)
    result = runner.invoke(app, ["score", ref, hyp, "--level", "word", "--normalizer", "basic"])
    assert result.exit_code == 0, result.output
    assert "%WER 50.00" in result.output and "wrote" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hyps.jsonl", "transcripts.tsv"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["absent.tsv", "{hyp}"], "absent.tsv: no such file"),
        (["{ref}", "{ref}x"], "no such file"),
        (["{ref}", "{hyp}", "--level", "chars"], "unknown level 'chars'"),
    ],
)
def test_cli_score_bad_input_is_one_clear_line(tmp_path, args, message):
    ref, hyp = write_example(tmp_path)
    result = runner.invoke(app, ["score", *(a.format(ref=ref, hyp=hyp) for a in args)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert message in result.output


# ---------------------------------------------------------------- FSDD end to end


def test_fsdd_end_to_end(tmp_path):
    tsv = FSDD / "transcripts.tsv"
    if not tsv.is_file():
        pytest.skip(f"{FSDD} not present")
    refs = load_references(tsv)
    assert len(refs) > 100
    perfect = score(refs, {k: r.text for k, r in refs.items()})
    assert perfect.error_rate == 0.0 and perfect.totals.sentences == len(refs)
    assert perfect.totals.words == sum(len(r.text.split()) for r in refs.values())

    digits = "zero one two three four five six seven eight nine".split()
    ids = sorted(refs)[::17]  # a deterministic spread over speakers and digits
    k, n, m, j = 7, 5, 4, 3
    replaced, dropped, extended, emptied = ids[:k], ids[k:k + n], ids[k + n:k + n + m], ids[k + n + m:k + n + m + j]
    hyps = {key: r.text for key, r in refs.items()}
    for key in replaced:
        word = hyps[key].split()[0]
        hyps[key] = digits[(digits.index(word) + 1) % 10] if word in digits else "banana"
    for key in dropped:
        del hyps[key]
    for key in extended:
        hyps[key] += " hello"  # not a number word, so it cannot merge into the digit
    for key in emptied:
        hyps[key] = ""
    result = score(refs, hyps)
    assert counts(result) == (k, n + j, m)
    assert result.missing == sorted(dropped)
    assert result.totals.sentence_errors == k + n + m + j
    paths = write_reports(result, tmp_path, "fsdd", "corrupt")
    assert (tmp_path / "wer-summary-fsdd-corrupt.txt").read_text().startswith("settings\tWER\ncorrupt\t")
    assert len(paths) == 5

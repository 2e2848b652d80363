"""Score hypotheses against references (WER, or CER for Chinese) and write icefall/ESPnet reports.

One kaldialign alignment per utterance (the one icefall's `write_error_stats` uses) feeds every
count and every report, so the numbers in all files agree.

    refs = load_references("data/fsdd_supervisions_test.jsonl.gz")
    result = score(refs, load_hypotheses("exp/hyps.jsonl"))
    write_reports(result, "exp/score", "test")
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

import kaldialign

from xasr.io import read_lines, write_atomic
from xasr.text import NORMALIZERS, get_normalizer, is_chinese

log = logging.getLogger(__name__)

Pathlike = Union[str, Path]
Pair = tuple[Optional[str], Optional[str]]  # (ref token, hyp token); None marks a gap

LEVELS = ("auto", "word", "char")
MANIFEST_SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json")
TABLE_HEADER = "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n|---|---|---|---|---|---|---|---|---|"
_GAP = " "  # kaldialign's epsilon: tokens never contain whitespace, so it cannot clash with one
_ERR = "*"  # how icefall's reports show a gap
_REF_HINT = "give a lhotse supervisions/cuts manifest (.jsonl.gz) or a transcripts.tsv (path<TAB>speaker<TAB>text)"
_HYP_HINT = 'give JSON lines ({"id": ..., "text": ...}) or Kaldi text (utt_id words...)'


@dataclass
class Reference:
    text: str
    speaker: Optional[str] = None


@dataclass
class Counts:
    """Error counts of a set of utterances, in sclite/ESPnet terms."""

    sentences: int = 0
    words: int = 0  # reference tokens (characters for CER)
    correct: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    sentence_errors: int = 0  # utterances with at least one error

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """Errors per 100 reference tokens."""
        if self.words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.words

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class UtteranceScore:
    id: str
    ref: list[str]
    hyp: list[str]
    alignment: list[Pair]
    speaker: Optional[str] = None
    missing: bool = False  # no hypothesis was given: every reference token is a deletion

    def counts(self) -> Counts:
        c = Counts(sentences=1, words=len(self.ref))
        for r, h in self.alignment:
            if r is None:
                c.insertions += 1
            elif h is None:
                c.deletions += 1
            elif r != h:
                c.substitutions += 1
            else:
                c.correct += 1
        c.sentence_errors = int(c.errors > 0)
        return c


@dataclass
class ScoreResult:
    level: str  # "word" or "char"
    normalizer: str
    utterances: list[UtteranceScore]  # sorted by id
    totals: Counts
    speakers: dict[str, Counts] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # references without a hypothesis
    extra: list[str] = field(default_factory=list)  # hypotheses without a reference (not scored)

    @property
    def metric(self) -> str:
        return "CER" if self.level == "char" else "WER"

    @property
    def error_rate(self) -> float:
        return self.totals.error_rate

    def summary(self) -> str:
        t = self.totals
        return (
            f"%{self.metric} {t.error_rate:.2f} [{t.errors} / {t.words}, {t.insertions} ins, "
            f"{t.deletions} del, {t.substitutions} sub] on {t.sentences} utterances"
        )


# ---------------------------------------------------------------- reading


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of the non-blank lines, with clear errors for unreadable files."""
    try:
        for number, line in read_lines(path):
            if line.strip():
                yield number, line
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None


def _first_line(path: Path, hint: str) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; {hint}")
    for _, line in _lines(path):
        return line
    raise ValueError(f"{path} is empty; {hint}")


def load_references(path: Pathlike) -> dict[str, Reference]:
    """References by utterance id from a lhotse SupervisionSet/CutSet manifest or a transcripts.tsv."""
    path = Path(path)
    if path.is_dir() and (path / "transcripts.tsv").is_file():
        path = path / "transcripts.tsv"
    first = _first_line(path, _REF_HINT)
    if path.name.endswith(MANIFEST_SUFFIXES):
        refs = _references_from_manifest(path)
    elif path.name.endswith(".tsv") or first.count("\t") == 2:
        from xasr.data.tsv import read_transcripts  # ids are file stems, as `xasr prepare tsv` makes them

        refs = {row.utt_id: Reference(row.text, row.speaker) for row in read_transcripts(path)}
    elif first.lstrip().startswith("{"):
        raise ValueError(f"{path}: looks like JSON lines; name it *.jsonl or *.jsonl.gz so lhotse can load it")
    else:
        raise ValueError(f"{path}: unrecognised reference format; {_REF_HINT}")
    if not refs:
        raise ValueError(f"{path} holds no utterances; {_REF_HINT}")
    return refs


def _references_from_manifest(path: Path) -> dict[str, Reference]:
    from lhotse import CutSet, SupervisionSet, load_manifest

    try:
        manifest = load_manifest(path)
    except Exception as e:  # lhotse raises JSON, key and type errors alike
        reason = " ".join(str(e).split())[:200]
        raise ValueError(f"{path}: not a lhotse SupervisionSet or CutSet manifest ({reason})") from None
    if isinstance(manifest, SupervisionSet):
        items = [(s.id, s.text or "", s.speaker) for s in manifest]
    elif isinstance(manifest, CutSet):
        items = []
        for cut in manifest:
            sups = sorted(cut.supervisions, key=lambda s: s.start)
            text = " ".join(s.text for s in sups if s.text)
            items.append((cut.id, text, sups[0].speaker if sups else None))
    else:
        raise ValueError(f"{path} holds a {type(manifest).__name__}; pass the supervisions or cuts manifest")
    refs: dict[str, Reference] = {}
    for utt_id, text, speaker in items:
        if utt_id in refs:
            raise ValueError(f"{path}: utterance id '{utt_id}' appears twice; ids must be unique")
        refs[utt_id] = Reference(" ".join(text.split()), speaker)
    return refs


def load_hypotheses(path: Pathlike) -> dict[str, str]:
    """Hypotheses by utterance id from JSON lines (`{"id", "text"}`) or Kaldi text (`utt_id words...`)."""
    path = Path(path)
    jsonl = _first_line(path, _HYP_HINT).lstrip().startswith("{")
    hyps: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for number, line in _lines(path):
        where = f"{path}:{number}"
        if jsonl:
            utt_id, text = _parse_json_hypothesis(line, where)
        else:
            utt_id, *rest = line.split(maxsplit=1)
            text = rest[0] if rest else ""
        if utt_id in first_seen:
            raise ValueError(f"{where}: utterance id '{utt_id}' repeats line {first_seen[utt_id]}")
        first_seen[utt_id] = number
        hyps[utt_id] = " ".join(text.split())
    return hyps


def _parse_json_hypothesis(line: str, where: str) -> tuple[str, str]:
    expected = 'every line must be a JSON object {"id": ..., "text": ...}'
    try:
        item = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg}); {expected}") from None
    if not isinstance(item, dict) or "id" not in item or "text" not in item:
        raise ValueError(f"{where}: missing 'id' or 'text'; {expected}")
    utt_id, text = item["id"], item["text"]
    if not isinstance(utt_id, (str, int)) or isinstance(utt_id, bool) or str(utt_id).strip() == "":
        raise ValueError(f"{where}: 'id' must be a non-empty string, found {utt_id!r}")
    if not isinstance(text, str):
        raise ValueError(f"{where}: 'text' must be a string, found {text!r}")
    return str(utt_id), text


def default_set_name(ref_path: Pathlike) -> str:
    """Test set name from the reference path: the file name without manifest/tsv extensions."""
    path = Path(ref_path)
    if path.is_dir() or path.name == "transcripts.tsv":
        return (path if path.is_dir() else path.parent).resolve().name
    return re.sub(r"(\.jsonl|\.json|\.tsv|\.txt)?(\.gz)?$", "", path.name)


# ---------------------------------------------------------------- scoring


def _align(ref: list[str], hyp: list[str]) -> list[Pair]:
    return [(None if r == _GAP else r, None if h == _GAP else h) for r, h in kaldialign.align(ref, hyp, _GAP)]


def score(
    references: Mapping[str, Union[Reference, str]],
    hypotheses: Mapping[str, str],
    level: str = "auto",
    normalizer: str = "auto",
) -> ScoreResult:
    """Align every reference with its hypothesis; a missing hypothesis scores as all deletions.

    level "auto" gives CER (characters, whitespace removed, as icefall does) for Chinese references
    and WER otherwise; normalizer "auto" is "chinese" or "english" accordingly.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level '{level}'; choose one of {', '.join(LEVELS)}")
    if normalizer != "auto" and normalizer not in NORMALIZERS:
        raise ValueError(f"unknown normalizer '{normalizer}'; choose one of auto, {', '.join(NORMALIZERS)}")
    if not references:
        raise ValueError("no references to score")
    refs = {k: v if isinstance(v, Reference) else Reference(v) for k, v in references.items()}
    if "auto" in (level, normalizer):
        chinese = is_chinese(r.text for r in refs.values())
        level = ("char" if chinese else "word") if level == "auto" else level
        normalizer = ("chinese" if chinese else "english") if normalizer == "auto" else normalizer
    normalize = get_normalizer(normalizer)

    def tokens(text: str) -> list[str]:
        words = normalize(text).split()
        return list("".join(words)) if level == "char" else words

    utterances, totals, speakers = [], Counts(), defaultdict(Counts)
    for utt_id in sorted(refs):
        ref = tokens(refs[utt_id].text)
        hyp = tokens(hypotheses.get(utt_id, ""))
        utt = UtteranceScore(utt_id, ref, hyp, _align(ref, hyp), refs[utt_id].speaker, utt_id not in hypotheses)
        counts = utt.counts()
        totals.add(counts)
        speakers[utt.speaker or "unknown"].add(counts)
        utterances.append(utt)
    if totals.words == 0:
        raise ValueError(
            f"all {len(refs)} references are empty after the '{normalizer}' normalizer; nothing to score"
        )
    missing = [u.id for u in utterances if u.missing]
    extra = sorted(set(hypotheses) - set(refs))
    if missing:
        log.warning("%d of %d references have no hypothesis; scored as deletions: %s",
                    len(missing), len(refs), _some(missing))
    if extra:
        log.warning("%d hypotheses have no reference and are not scored: %s", len(extra), _some(extra))
    return ScoreResult(level, normalizer, utterances, totals, dict(sorted(speakers.items())), missing, extra)


def _some(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")


# ---------------------------------------------------------------- reports


def format_recogs(result: ScoreResult) -> str:
    """icefall's `store_transcripts`: ref/hyp token lists (Python repr), sorted by id."""
    lines = []
    for u in result.utterances:
        lines += [f"{u.id}:\tref={u.ref}", f"{u.id}:\thyp={u.hyp}"]
    return "".join(line + "\n" for line in lines)


def _per_utt_line(u: UtteranceScore) -> str:
    """icefall's PER-UTT DETAILS: runs of successive errors shown as one (ref words->hyp words)."""
    parts, run = [], []
    for pair in u.alignment + [("", "")]:  # the sentinel flushes the last run
        if pair[0] != pair[1]:
            run.append(pair)
            continue
        if run:
            ref = " ".join(r for r, _ in run if r is not None) or _ERR
            hyp = " ".join(h for _, h in run if h is not None) or _ERR
            parts.append(ref if ref == hyp else f"({ref}->{hyp})")
            run = []
        if pair[0]:
            parts.append(pair[0])
    return f"{u.id}:\t" + " ".join(parts)


def format_errs(result: ScoreResult) -> str:
    """icefall's `write_error_stats` output, byte for byte (it says %WER for CER too)."""
    subs: dict[tuple[str, str], int] = defaultdict(int)
    dels: dict[str, int] = defaultdict(int)
    ins: dict[str, int] = defaultdict(int)
    words: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # corr, ref_sub, hyp_sub, ins, del
    for u in result.utterances:
        for r, h in u.alignment:
            if r is None:
                ins[h] += 1
                words[h][3] += 1
            elif h is None:
                dels[r] += 1
                words[r][4] += 1
            elif r != h:
                subs[(r, h)] += 1
                words[r][1] += 1
                words[h][2] += 1
            else:
                words[r][0] += 1
    t = result.totals
    out = [
        f"%WER = {t.error_rate:.2f}",
        f"Errors: {t.insertions} insertions, {t.deletions} deletions, {t.substitutions} substitutions, "
        f"over {t.words} reference words ({t.correct} correct)",
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, DELETIONS:, "
        "INSERTIONS:, PER-WORD STATS:",
        "",
        "PER-UTT DETAILS: corr or (ref->hyp)  ",
        *(_per_utt_line(u) for u in result.utterances),
        "",
        "SUBSTITUTIONS: count ref -> hyp",
    ]
    # icefall sorts (count, key) tuples in reverse: most frequent first, ties by key descending
    out += [f"{n}   {r} -> {h}" for n, (r, h) in sorted(((n, k) for k, n in subs.items()), reverse=True)]
    out += ["", "DELETIONS: count ref"]
    out += [f"{n}   {r}" for n, r in sorted(((n, k) for k, n in dels.items()), reverse=True)]
    out += ["", "INSERTIONS: count hyp"]
    out += [f"{n}   {h}" for n, h in sorted(((n, k) for k, n in ins.items()), reverse=True)]
    out += ["", "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp"]
    for errs, word, (corr, ref_sub, hyp_sub, n_ins, n_del) in sorted(
        ((sum(v[1:]), k, v) for k, v in words.items()), reverse=True
    ):
        out.append(f"{word}   {corr} {errs} {corr + ref_sub + n_del} {corr + hyp_sub + n_ins}")
    return "".join(line + "\n" for line in out)


def format_wer_summary(result: ScoreResult, suffix: str) -> str:
    # icefall stores float("%.2f" % wer), so 2.10 is written as 2.1
    return f"settings\tWER\n{suffix}\t{float(f'{result.error_rate:.2f}')}\n"


def _table_row(name: str, c: Counts) -> str:
    def pct(n: int, d: int) -> str:
        return f"{100.0 * n / d:.1f}" if d else "-"

    cells = [name, str(c.sentences), str(c.words), pct(c.correct, c.words), pct(c.substitutions, c.words),
             pct(c.deletions, c.words), pct(c.insertions, c.words), pct(c.errors, c.words),
             pct(c.sentence_errors, c.sentences)]
    return "|" + "|".join(cells) + "|"


def result_table_row(result: ScoreResult, name: str) -> str:
    """One ESPnet RESULTS.md row `|name|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|` (percentages), for TABLE_HEADER."""
    return _table_row(name, result.totals)


def format_results_md(result: ScoreResult, test_set_name: str, suffix: str = "xasr") -> str:
    """ESPnet RESULTS.md-style tables: the whole set, then per speaker, then missing/extra ids."""
    m = result.metric
    out = [
        f"# {test_set_name} ({suffix})",
        "",
        f"- {m} on {result.level}s, `{result.normalizer}` text normalizer",
        f"- {result.summary()}",
        "",
        f"### {m}",
        "",
        TABLE_HEADER,
        result_table_row(result, test_set_name),
    ]
    if result.speakers:
        out += ["", f"### {m} per speaker", "", TABLE_HEADER.replace("|dataset|", "|speaker|", 1)]
        out += [_table_row(speaker, counts) for speaker, counts in result.speakers.items()]
    if result.missing:
        out += ["", "### Missing hypotheses", "",
                f"{len(result.missing)} reference(s) without a hypothesis, scored as all deletions:", ""]
        out += [f"- {utt_id}" for utt_id in result.missing]
    if result.extra:
        out += ["", "### Hypotheses without a reference", "", f"{len(result.extra)} hypothesis(es), not scored:", ""]
        out += [f"- {utt_id}" for utt_id in result.extra]
    return "".join(line + "\n" for line in out)


def format_scores_json(result: ScoreResult, test_set_name: str, suffix: str = "xasr") -> str:
    """The scores as JSON for programs (recipes read this, not the reports for people): the metric,
    its rate as icefall's summary rounds it, the whole-set counts and the results table's row."""
    return json.dumps({
        "test_set": test_set_name, "settings": suffix, "metric": result.metric, "level": result.level,
        "normalizer": result.normalizer, "error_rate": float(f"{result.error_rate:.2f}"), "summary": result.summary(),
        "counts": {**asdict(result.totals), "errors": result.totals.errors},
        "speakers": {name: asdict(counts) for name, counts in result.speakers.items()},
        "missing": len(result.missing), "extra": len(result.extra),
        "table_header": TABLE_HEADER, "table_row": result_table_row(result, test_set_name),
    }, indent=1) + "\n"


def write_reports(result: ScoreResult, output_dir: Pathlike, test_set_name: str, suffix: str = "xasr") -> list[Path]:
    """Write icefall's recogs/errs/wer-summary files, an ESPnet-style results .md and scores-*.json
    (the same numbers for programs); return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    reports = {
        f"recogs-{test_set_name}-{suffix}.txt": format_recogs(result),
        f"errs-{test_set_name}-{suffix}.txt": format_errs(result),
        f"wer-summary-{test_set_name}-{suffix}.txt": format_wer_summary(result, suffix),
        f"results-{test_set_name}-{suffix}.md": format_results_md(result, test_set_name, suffix),
        f"scores-{test_set_name}-{suffix}.json": format_scores_json(result, test_set_name, suffix),
    }
    paths = []
    for name, text in reports.items():
        write_atomic(output_dir / name, text)
        paths.append(output_dir / name)
    return paths

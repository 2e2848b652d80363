"""The `xasr` command line: prepare corpora, score hypotheses, show what this install can do."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="xasr: LLM-based speech recognition (X-LLM: frozen encoders, C-Former, frozen LLM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
prepare_app = typer.Typer(
    help="Prepare a corpus as lhotse manifests ({prefix}_{recordings,supervisions,cuts}_{split}.jsonl.gz).",
    no_args_is_help=True,
)
app.add_typer(prepare_app, name="prepare")


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )


def _save(splits, output_dir: Path, prefix: str) -> None:
    from xasr.data.manifests import save_manifests

    try:
        paths = save_manifests(splits, output_dir, prefix)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    skipped = [problem for manifests in splits.values() for problem in manifests.skipped]
    for split, manifests in splits.items():
        hours = sum(r.duration for r in manifests.recordings) / 3600
        typer.echo(f"{prefix}/{split}: {len(manifests)} utterances, {hours:.2f} h")
    typer.echo(f"wrote {len(paths)} manifests to {output_dir}")
    if skipped:
        for problem in skipped:
            typer.echo(f"skipped {problem}", err=True)
        _fail(f"{len(skipped)} file(s) could not be read and were left out (listed above)")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@prepare_app.command("tsv")
def prepare_tsv_command(
    corpus_dir: Path = typer.Argument(..., help="Folder with transcripts.tsv (path<TAB>speaker<TAB>text)."),
    output_dir: Path = typer.Argument(..., help="Where to write the manifests."),
    prefix: Optional[str] = typer.Option(None, help="Manifest prefix; defaults to the folder's name."),
    split: str = typer.Option("all", help="Split name used in the manifest file names."),
    language: Optional[str] = typer.Option(None, help="Language tag stored in the supervisions."),
) -> None:
    """Any folder with a transcripts.tsv, e.g. ../shared/data/real_en_dev."""
    from xasr.data.tsv import prepare_tsv

    try:
        splits = prepare_tsv(corpus_dir, split=split, language=language)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _save(splits, output_dir, prefix or corpus_dir.resolve().name)


@prepare_app.command("fsdd")
def prepare_fsdd_command(
    corpus_dir: Path = typer.Argument(..., help="FSDD folder (with recordings/{digit}_{speaker}_{take}.wav)."),
    output_dir: Path = typer.Argument(..., help="Where to write the manifests."),
    prefix: str = typer.Option("fsdd", help="Manifest prefix."),
) -> None:
    """Free Spoken Digit Dataset with its own split: takes 0-4 test, 5-49 train."""
    from xasr.data.fsdd import prepare_fsdd

    try:
        splits = prepare_fsdd(corpus_dir)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _save(splits, output_dir, prefix)


@prepare_app.command("librispeech")
def prepare_librispeech_command(
    corpus_dir: Path = typer.Argument(..., help="Folder holding (or to receive) LibriSpeech/."),
    output_dir: Path = typer.Argument(..., help="Where to write the manifests."),
    parts: List[str] = typer.Option(
        ["dev-clean", "test-clean"], "--part", help="Parts to prepare, repeatable (e.g. train-clean-100)."
    ),
    download: bool = typer.Option(False, help="Download the parts from openslr.org first."),
    num_jobs: int = typer.Option(2, help="Parallel jobs for scanning audio."),
) -> None:
    """LibriSpeech through lhotse's own download and prepare recipes."""
    from xasr.data.librispeech import prepare_librispeech

    try:
        splits = prepare_librispeech(corpus_dir, parts=parts, download=download, num_jobs=num_jobs)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _save(splits, output_dir, "librispeech")


@prepare_app.command("aishell")
def prepare_aishell_command(
    corpus_dir: Path = typer.Argument(..., help="Folder holding (or to receive) aishell/data_aishell."),
    output_dir: Path = typer.Argument(..., help="Where to write the manifests."),
    download: bool = typer.Option(False, help="Download AISHELL-1 from openslr.org first."),
) -> None:
    """AISHELL-1 (Mandarin) through lhotse's own download and prepare recipes."""
    from xasr.data.aishell import prepare_aishell

    try:
        splits = prepare_aishell(corpus_dir, download=download)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _save(splits, output_dir, "aishell")


@prepare_app.command("tts")
def prepare_tts_command(
    text_file: Path = typer.Argument(..., help="Sentences: id<TAB>text tsv, or one sentence a line."),
    output_dir: Path = typer.Argument(..., help="Where to write audio/ and the manifests."),
    num_utterances: Optional[int] = typer.Option(None, help="How many utterances; default one per sentence."),
    engines: List[str] = typer.Option(
        ["piper", "espeak", "flite", "festival"], "--engine", help="TTS engine to use, repeatable."
    ),
    seed: int = typer.Option(0, help="Seed for sentence order and voice, rate and pitch choices."),
    num_jobs: int = typer.Option(2, help="Parallel synthesis processes."),
    prefix: str = typer.Option("tts", help="Manifest prefix."),
    split: str = typer.Option("train", help="Split name used in the manifest file names."),
) -> None:
    """Synthetic speech from offline TTS engines; re-running continues an interrupted run."""
    from xasr.data.tts import prepare_tts

    try:
        splits = prepare_tts(text_file, output_dir, num_utterances=num_utterances, engines=engines,
                             seed=seed, num_jobs=num_jobs, split=split)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        _fail(str(e))
    stats = splits[split].stats
    typer.echo(stats.table())
    for failure in stats.failures:
        typer.echo(f"synthesis failed: {failure}", err=True)
    _save(splits, output_dir, prefix)
    if stats.failures:
        _fail(f"{len(stats.failures)} utterance(s) could not be synthesized (listed above); "
              "re-run to retry them")


@app.command("score")
def score_command(
    ref: Path = typer.Argument(..., help="References: lhotse supervisions/cuts manifest or transcripts.tsv."),
    hyp: Path = typer.Argument(..., help='Hypotheses: JSON lines {"id": ..., "text": ...} or Kaldi text.'),
    output_dir: Optional[Path] = typer.Option(None, help="Write icefall recogs/errs/wer-summary and results .md here."),
    name: Optional[str] = typer.Option(None, help="Test set name in the report file names; defaults to REF's name."),
    suffix: str = typer.Option("xasr", help="Settings name in the report file names and the wer-summary."),
    level: str = typer.Option("auto", help="auto (CER for Chinese references, else WER), word or char."),
    normalizer: str = typer.Option("auto", help="auto (chinese or english), english, chinese, basic or none."),
) -> None:
    """WER (CER for Chinese) of hypotheses against references; missing hypotheses count as deletions."""
    from xasr.score import default_set_name, load_hypotheses, load_references, score, write_reports

    try:
        result = score(load_references(ref), load_hypotheses(hyp), level=level, normalizer=normalizer)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"{result.summary()} ({result.level} level, {result.normalizer} normalizer)")
    typer.echo(f"missing hypotheses: {len(result.missing)} (scored as deletions)")
    if result.extra:
        typer.echo(f"hypotheses without a reference: {len(result.extra)} (not scored)")
    if output_dir is not None:
        try:
            paths = write_reports(result, output_dir, name or default_set_name(ref), suffix)
        except OSError as e:
            _fail(f"cannot write reports to {output_dir}: {e}")
        for path in paths:
            typer.echo(f"wrote {path}")


@app.command("train")
def train_command(
    config: Path = typer.Argument(..., help="Recipe YAML with model:, train: and stage1:/stage2: sections."),
    train_cuts: Path = typer.Option(..., help="Training cuts manifest (.jsonl.gz)."),
    exp_dir: Path = typer.Option(..., help="Experiment folder of this stage (checkpoint, logs, model/)."),
    stage: int = typer.Option(1, help="1 convert (C-Former), 2 align with the LLM, 3 integrate modalities."),
    valid_cuts: Optional[Path] = typer.Option(None, help="Validation cuts for a loss at every epoch end."),
    init_from: Optional[Path] = typer.Option(None, help="Model directory to start from (e.g. stage 1's model)."),
    feature_cache: Optional[Path] = typer.Option(
        None, help="Cache the frozen encoder's outputs here once and train on them."),
    override: List[str] = typer.Option([], "--set", help="Config override section.key=value, repeatable."),
) -> None:
    """Train one stage; re-running resumes from the stage's checkpoint. Multi-GPU: torchrun ... xasr train."""
    from lhotse import CutSet

    from xasr.data.dataset import cache_encoder_features
    from xasr.model import XASRModel
    from xasr.train import load_config_file, train

    try:
        model_config, train_config = load_config_file(config, stage, override)
        cuts = {name: CutSet.from_file(path) for name, path in (("train", train_cuts), ("valid", valid_cuts))
                if path is not None}
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if init_from is not None:
        model = XASRModel.load(init_from)
        if model.config.to_dict() != model_config.to_dict():
            typer.echo(f"note: the model comes from {init_from}; its config is used, not {config}'s model:", err=True)
    else:
        model = XASRModel.from_config(model_config)
    if feature_cache is not None:
        for name in list(cuts):
            cuts[name] = cache_encoder_features(model.encoder, cuts[name], feature_cache / name)
    model_dir = train(model, cuts["train"], exp_dir, train_config, valid_cuts=cuts.get("valid"))
    typer.echo(f"model saved to {model_dir}")


@app.command("info")
def info_command() -> None:
    """Versions of xasr and its packages, the compute device, and external tools."""
    from xasr.info import collect_info

    for section, rows in collect_info().items():
        typer.echo(f"{section}:")
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            typer.echo(f"  {key:<{width}}  {value}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

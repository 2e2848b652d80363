"""The `xasr` command line: prepare corpora, score hypotheses, show what this install can do."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional

import typer

from xasr.config import DecodeOptions
from xasr.io import atomic_path

DECODE_DEFAULTS = DecodeOptions()  # `xasr decode`'s defaults are the Python API's

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
    """An input or runtime problem: one line on stderr, exit status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _usage(message: str) -> None:
    """A bad option or a refused run: one line on stderr, exit status 2 (as for typer's usage errors)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_device(device: str) -> None:
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        _usage(f"--device {device}: not a device (use cpu, cuda or cuda:N)")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        _usage(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        _usage(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    if parsed.type not in ("cpu", "cuda"):
        _usage(f"--device {device}: xasr runs on cpu or cuda")


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


@prepare_app.command("tuxpaint")
def prepare_tuxpaint_command(
    output_dir: Path = typer.Argument(..., help="Where to write the manifests and tuxpaint_captions.tsv."),
    stamps_dir: Path = typer.Option(Path("/usr/share/tuxpaint/stamps"), help="Tux Paint's stamps folder."),
) -> None:
    """Tux Paint stamps: the real spoken English captions with their pictures (split "test") and
    every caption as a sentences file for `xasr prepare tts` (ids are stamp ids)."""
    from xasr.data.tuxpaint import APT_PACKAGE, prepare_tuxpaint, read_stamps, write_captions

    try:
        stamps = read_stamps(stamps_dir)
        splits = prepare_tuxpaint(stamps_dir)
    except FileNotFoundError as e:
        _fail(f"{e}" if APT_PACKAGE in str(e) else f"{e} (sudo apt-get install {APT_PACKAGE})")
    except ValueError as e:
        _fail(str(e))
    write_captions(stamps, output_dir / "tuxpaint_captions.tsv")
    typer.echo(f"{output_dir / 'tuxpaint_captions.tsv'}: {len(stamps)} captions of stamps with a picture")
    _save(splits, output_dir, "tuxpaint")


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


@prepare_app.command("text")
def prepare_text_command(
    output: Path = typer.Argument(..., help="Sentences tsv (id<TAB>text) to write."),
    sources: List[str] = typer.Option(["wordnet", "fortunes"], "--source",
                                      help="Text source, repeatable: wordnet, fortunes, dictionary, games, naev "
                                           "(Debian packages), wikipedia (gensim's test data)."),
    exclude: List[Path] = typer.Option(
        [], help="Transcripts (tsv or lhotse manifest) whose sentences must not appear (test sets), repeatable."),
    min_words: int = typer.Option(4, help="Shortest sentence kept, in words."),
    max_words: int = typer.Option(30, help="Longest sentence kept, in words."),
) -> None:
    """Sentences for `xasr prepare tts` from text in Debian packages (xasr.data.texts)."""
    from xasr.data.texts import collect_sentences, write_sentences

    missing = [str(p) for p in exclude if not p.is_file()]
    if missing:
        _fail(f"--exclude: no such file: {', '.join(missing)}")
    try:
        sentences = collect_sentences(sources, exclude=exclude, min_words=min_words, max_words=max_words)
    except FileNotFoundError as e:  # names the apt package to install
        _fail(str(e))
    except ValueError as e:
        _usage(str(e))
    if not sentences:
        _fail("no sentence passed the filters; widen --min-words/--max-words")
    write_sentences(sentences, output)
    typer.echo(f"{output}: {len(sentences)} sentences from {', '.join(sources)}")


@prepare_app.command("augment")
def prepare_augment_command(
    cuts: Path = typer.Argument(..., help="Cuts manifest (.jsonl.gz) to augment."),
    output: Path = typer.Argument(..., help="Cuts manifest to write: the augmented copies only."),
    copies: int = typer.Option(1, help="Augmented copies of every cut (ids <id>_aug1, <id>_aug2, ...)."),
    seed: int = typer.Option(0, help="Seed of the effects drawn per cut, the noise and the impulse responses."),
    noise_dir: Optional[Path] = typer.Option(
        None, help="Where the generated noise and room impulse responses go [default: beside OUTPUT]."),
    num_rirs: int = typer.Option(100, help="Simulated room impulse responses to draw from."),
    fraction: float = typer.Option(
        1.0, help="Augment only this random fraction of the cuts (each copy draws its own)."),
) -> None:
    """Augmented copies of CUTS: speed, room reverberation, noise or another talker, telephone band,
    lossy codecs, gain (xasr.augment). The effects run when the audio is loaded, e.g. by
    `xasr cache-features`."""
    from lhotse import CutSet

    from xasr.augment import augment_cuts, make_noise_cuts, make_rir_recordings

    if not cuts.is_file():
        _fail(f"{cuts}: no such file")
    if copies < 1:
        _usage("--copies must be at least 1")
    if not 0 < fraction <= 1:
        _usage("--fraction must be in (0, 1]")
    try:
        source = CutSet.from_file(cuts)
    except ValueError as e:
        _fail(f"{cuts}: {e}")
    if source is None or len(source := source.to_eager()) == 0:  # lhotse reads an empty manifest as None
        _fail(f"{cuts}: the manifest has no cuts")
    noise_dir = noise_dir or output.parent / "augment"
    noise = make_noise_cuts(noise_dir / "noise", seed=seed)
    rirs = make_rir_recordings(noise_dir / "rir", count=num_rirs, seed=seed)
    augmented = CutSet.from_cuts(cut for copy in range(1, copies + 1)
                                 for cut in augment_cuts(source, noise=noise, rirs=rirs, copy=copy, seed=seed,
                                                         fraction=fraction))
    with atomic_path(output, suffix=".jsonl.gz") as tmp:
        augmented.to_file(tmp)
    typer.echo(f"{output}: {len(augmented)} augmented copies of the {len(source)} cuts of {cuts}")


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


def _starting_model(model_config, train_config, init_from: Optional[Path]):
    """The model a training run starts from: `init_from`'s weights under this recipe's settings, or a new
    one (the same seed gives the same initial weights, hence the same losses)."""
    from xasr.model import XASRModel
    from xasr.train import seed_everything

    seed_everything(train_config.seed)
    if init_from is not None:
        return XASRModel.load(init_from, config=model_config)
    return XASRModel.from_config(model_config)


@app.command("train")
def train_command(
    config: Path = typer.Argument(..., help="Recipe YAML with model:, train: and convert:/align:/integrate: "
                                  "(or stage1:-stage3:) sections."),
    train_cuts: List[Path] = typer.Option(..., help="Training cuts manifest (.jsonl.gz); repeat to join several."),
    exp_dir: Path = typer.Option(..., help="Experiment folder of this stage (checkpoint, logs, model/)."),
    stage: str = typer.Option(
        "convert", help="convert (1: the C-Former), align (2: with the LLM) or integrate (3: images/video)."),
    valid_cuts: Optional[Path] = typer.Option(None, help="Validation cuts for a loss at every epoch end."),
    init_from: Optional[Path] = typer.Option(
        None, help="Model directory to start from (e.g. stage 1's model); the config's training settings apply."),
    feature_cache: Optional[Path] = typer.Option(
        None, help="Cache the frozen encoder's outputs here once and train on them."),
    vision_feature_cache: Optional[Path] = typer.Option(
        None, help="Stage 3: keep the frozen vision encoder's features of each picture and clip here "
                   "[default: EXP_DIR/vision_features]."),
    override: List[str] = typer.Option([], "--set", help="Config override section.key=value, repeatable."),
) -> None:
    """Train one stage; re-running resumes from the stage's checkpoint. Multi-GPU: torchrun ... xasr train."""
    from lhotse import CutSet

    from xasr.config import load_config_file
    from xasr.data.dataset import cache_encoder_features
    from xasr.train import train

    try:
        model_config, train_config = load_config_file(config, stage, override)
        cuts = {"train": CutSet.from_cuts(cut for path in train_cuts for cut in CutSet.from_file(path))}
        if valid_cuts is not None:
            cuts["valid"] = CutSet.from_file(valid_cuts)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    try:
        model = _starting_model(model_config, train_config, init_from)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if feature_cache is not None:
        if not model.config.encoder.frozen:
            _fail("--feature-cache caches a frozen encoder's outputs, but this model trains its encoder; drop it")
        for name in list(cuts):
            cuts[name] = cache_encoder_features(model.encoder, cuts[name], feature_cache / name)
    model_dir = train(model, cuts["train"], exp_dir, train_config, valid_cuts=cuts.get("valid"),
                      vision_feature_dir=vision_feature_cache)
    typer.echo(f"model saved to {model_dir}")


@app.command("export")
def export_command(
    config: Path = typer.Argument(..., help="The recipe YAML the run trained with."),
    exp_dir: Path = typer.Option(..., help="The stage's experiment folder (its checkpoint.pt is exported)."),
    output_dir: Path = typer.Option(..., help="Model folder to write (config.json, weights, LoRA)."),
    stage: str = typer.Option("convert", help="The stage the run trained: convert, align or integrate."),
    init_from: Optional[Path] = typer.Option(None, help="The run's --init-from model, if it had one."),
    override: List[str] = typer.Option([], "--set", help="The run's config overrides section.key=value."),
) -> None:
    """Write a model folder from a stage's latest checkpoint, e.g. to decode a run that is still training."""
    from xasr.config import load_config_file
    from xasr.train import export_checkpoint

    try:
        model_config, train_config = load_config_file(config, stage, override)
        model = _starting_model(model_config, train_config, init_from)
        where = export_checkpoint(model, exp_dir, output_dir)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"exported stage {where['stage']} at epoch {where['epoch']}, step {where['step']} to {output_dir}")


@app.command("average")
def average_command(
    output_dir: Path = typer.Argument(..., help="Model folder to write."),
    models: List[Path] = typer.Argument(..., help="Model folders to average (two or more, one adapter layout)."),
    weight: List[float] = typer.Option([], "--weight", help="One weight per model, in order (default: equal)."),
) -> None:
    """Average saved models' trained weights (a model soup: e.g. a fine-tuned model with the one it started from)."""
    from xasr.model import average_pretrained

    try:
        average_pretrained(models, output_dir, weight or None)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"wrote the average of {len(models)} models to {output_dir}")


@app.command("decode")
def decode_command(
    inputs: List[str] = typer.Argument(None, help="Audio files, directories (searched recursively) or globs."),
    model: Optional[str] = typer.Option(
        None, help="Model directory (EXP_DIR/model from xasr train), packaged model name or Hugging Face id "
                   "[default: the packaged default-en]."),
    manifest: Optional[Path] = typer.Option(None, help="lhotse cuts manifest to decode."),
    wav_scp: Optional[Path] = typer.Option(None, help="Kaldi wav.scp (utterance-id path per line)."),
    output_dir: Optional[Path] = typer.Option(None, help="Write the transcripts here."),
    output_format: List[str] = typer.Option(
        [], "--format",
        help="txt, jsonl, srt or vtt (repeatable or comma-separated); default jsonl with --output-dir."),
    ref: Optional[Path] = typer.Option(None, help="References (manifest or tsv): also write WER/CER reports."),
    name: Optional[str] = typer.Option(None, help="Test set name in the report file names (with --ref)."),
    suffix: str = typer.Option("xasr", help="Settings name in the report file names (with --ref)."),
    beam: Optional[int] = typer.Option(
        DECODE_DEFAULTS.num_beams,
        help="Beam size (greedy, fusion); default 1, or the model's fusion_beams for fusion."),
    search: Optional[str] = typer.Option(
        None, help="greedy (the LLM writes the transcript), draft (the same transcript, the LLM verifying the "
                   "C-Former's draft several tokens per pass), cif (the token head alone, no LLM: fastest) or "
                   "fusion (the token head's choices rescored by the LLM as a language model, --beam hypotheses) "
                   "[default: the model's own]."),
    batch_seconds: float = typer.Option(DECODE_DEFAULTS.batch_seconds, help="Seconds of (padded) audio per batch."),
    vad: str = typer.Option(DECODE_DEFAULTS.vad,
                            help="auto (split inputs longer than --max-segment-seconds), always or never."),
    max_segment_seconds: float = typer.Option(DECODE_DEFAULTS.max_segment_seconds,
                                              help="Longest segment decoded in one piece."),
    context: Optional[str] = typer.Option(None, help="Text given to the LLM with the speech (topic, names)."),
    hotwords: List[str] = typer.Option([], help="Words the speech may contain (repeatable or comma-separated)."),
    image: Optional[Path] = typer.Option(None, help="A picture shown with every input (models with an image "
                                                    "adapter); a manifest's own pictures come first."),
    video: Optional[Path] = typer.Option(None, help="A clip shown with every input (video file, folder of frames "
                                                    "or animated image; models with an image adapter)."),
    generation_set: List[str] = typer.Option(
        [], "--set", help="Decoding setting KEY=VALUE of the model's generation options (e.g. lm_weight=0.5, "
                          "fusion_context=image), repeatable."),
    int8: bool = typer.Option(False, "--int8", help="Dynamic int8 quantisation of the encoder and LLM (CPU)."),
    llm_dtype: str = typer.Option("model", help="Hold the frozen LLM in float32, bfloat16, auto (bf16 where "
                                                "native) or model (as trained)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1 ..."),
    max_audio_hours: float = typer.Option(DECODE_DEFAULTS.max_audio_hours, help="Refuse inputs longer than this."),
    plot_cif: Optional[Path] = typer.Option(None, help="Write a PNG of each segment's CIF firing positions here."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    overwrite: bool = typer.Option(
        False, help="Decode again inputs an earlier run already transcribed into --output-dir."),
) -> None:
    """Transcribe audio with timestamps; long files are split by voice activity. Prints id<TAB>text.

    A re-run into the same --output-dir skips the inputs already transcribed there (an interrupted
    run continues); two runs never write into one folder at once."""
    import dataclasses
    import time

    from xasr.config import SEARCHES, SINGLE_BEAM_SEARCHES, TOKEN_HEAD_SEARCHES, GenerationOptions, yaml_value
    from xasr.decode import collect_inputs, input_duration, transcribe
    from xasr.distributed import DistributedContext, Spool, shard_by_duration
    from xasr.loading import load_model, model_fingerprint, resolve_model_dir
    from xasr.pretrained import DEFAULT_MODEL
    from xasr.writers import SPOOL_DIR, OtherSettings, OutputLocked, TranscriptWriter

    for option, value in (("--beam", beam if beam is not None else 1), ("--batch-seconds", batch_seconds),
                          ("--max-segment-seconds", max_segment_seconds), ("--max-audio-hours", max_audio_hours)):
        if not value > 0:
            _usage(f"{option} {value}: must be positive")
    if search is not None and search not in SEARCHES:
        _usage(f"--search {search}: use {', '.join(SEARCHES)}")
    if search in SINGLE_BEAM_SEARCHES and beam is not None and beam > 1:
        _usage(f"--search {search} keeps one hypothesis: it takes no --beam (fusion and greedy do)")
    if llm_dtype not in ("float32", "bfloat16", "auto", "model"):
        _usage(f"--llm-dtype {llm_dtype}: use float32, bfloat16, auto or model")
    if image is not None and not image.is_file():
        _usage(f"--image {image}: no such file")
    if video is not None and not video.exists():
        _usage(f"--video {video}: no such file or folder")
    if image is not None and video is not None:
        _usage("--image and --video: show a picture or a clip, not both")
    generation_overrides = {}
    for item in generation_set:
        key, sep, value = item.partition("=")
        if not sep or key not in {f.name for f in dataclasses.fields(GenerationOptions)}:
            _usage(f"--set {item}: use KEY=VALUE with a generation option "
                   f"({', '.join(f.name for f in dataclasses.fields(GenerationOptions))})")
        generation_overrides[key] = yaml_value(value)
    _check_device(device)

    formats = [f.strip() for spec in output_format for f in spec.split(",") if f.strip()]
    if output_dir is not None and not formats:
        formats = ["jsonl"]
    if formats and output_dir is None:
        _usage("--format needs --output-dir")
    if ref is not None and "jsonl" not in formats:
        if output_dir is None:
            _usage("--ref needs --output-dir (the reports are written there)")
        formats.append("jsonl")
    if vad not in ("auto", "always", "never"):
        _usage(f"--vad {vad}: use auto, always or never")
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if several and output_dir is None:
        _usage("decoding on several processes (torchrun) needs --output-dir: rank 0 merges the outputs there")
    ranks = DistributedContext(device) if several else None
    main = ranks is None or ranks.is_main
    try:
        items, problems = collect_inputs(inputs or [], manifest, wav_scp)
    except (OSError, ValueError) as e:
        _fail(str(e))
    for problem in problems if main else []:
        typer.echo(f"error: {problem}", err=True)
    if not items:
        _fail("nothing to decode: give audio files, directories, globs, --manifest or --wav-scp")
    order = [item.id for item in items]
    writer, refused = None, None
    try:
        if output_dir is not None and main:
            model_dir = resolve_model_dir(model)
            settings = {  # what shapes the transcripts: a folder made with other settings is not resumed
                "model_name": model or DEFAULT_MODEL, "model_fingerprint": model_fingerprint(model_dir),
                "search": search, "beam": beam, "int8": int8, "llm_dtype": llm_dtype, "context": context,
                "hotwords": hotwords, "vad": vad, "max_segment_seconds": max_segment_seconds,
                "image": str(image) if image is not None else None,
                "video": str(video) if video is not None else None, "generation": generation_overrides}
            writer = TranscriptWriter(output_dir, formats, overwrite=overwrite, settings=settings)
    except (OutputLocked, OtherSettings, FileNotFoundError, ValueError, OSError) as e:
        refused = e
    if ranks is not None:  # the other ranks learn what rank 0 found in the output folder
        spool = Spool(output_dir / SPOOL_DIR)
        if writer is not None:
            for transcript in spool.take():  # left by ranks of a stopped run
                if transcript.id in order and transcript.error is None:
                    writer.write(transcript)
                    writer.done.add(transcript.id)
        refused, done = ranks.broadcast((refused, writer.done if writer is not None else None))
        if refused is not None and not main:
            raise typer.Exit(2 if isinstance(refused, (OutputLocked, OtherSettings)) else 1)
    else:
        done = writer.done if writer is not None else set()
    if isinstance(refused, (OutputLocked, OtherSettings)):
        _usage(str(refused))
    elif refused is not None:
        _fail(str(refused))
    if done:
        kept = sum(item.id in done for item in items)
        items = [item for item in items if item.id not in done]
        if main:
            typer.echo(f"resuming: {kept} of {len(order)} inputs are already transcribed in {output_dir} "
                       "(--overwrite decodes them again)", err=True)
    to_decode = len(items)
    if ranks is not None:
        shards = shard_by_duration(items, ranks.world_size, input_duration)
        items = [items[i] for i in shards[ranks.rank]]
    try:
        asr = load_model(model, device=str(ranks.device) if ranks is not None else device, int8=int8,
                         llm_dtype=None if llm_dtype == "model" else llm_dtype) if items else None
    except (FileNotFoundError, ValueError, OSError) as e:
        if writer is not None:
            writer.close(complete=False)
        _fail(str(e))
    options = DecodeOptions(
        num_beams=beam, batch_seconds=batch_seconds, vad=vad, max_segment_seconds=max_segment_seconds,
        context=context, hotwords=[w for spec in hotwords for w in spec.split(",") if w.strip()],
        max_audio_hours=max_audio_hours, plot_cif_dir=plot_cif, search=search,
        image=str(image) if image is not None else None, video=str(video) if video is not None else None)
    if asr is not None and (image is not None or video is not None) and asr.vision_encoder is None:
        flag = "--image" if image is not None else "--video"
        _usage(f"{flag}: this model has no image adapter (it transcribes speech alone); drop {flag}")
    if asr is not None and generation_overrides:
        try:
            options.generation = dataclasses.replace(asr.config.generation, **generation_overrides)
        except (TypeError, ValueError) as e:
            _usage(f"--set: {e}")
    if asr is not None and search in TOKEN_HEAD_SEARCHES and asr.config.adapter != "cformer":
        _usage(f"--search {search} needs a C-Former model; this one has the {asr.config.adapter} adapter")
    started, audio_seconds, failed, complete = time.time(), 0.0, 0, False
    finished, write_failures = 0, 0

    def report(transcript) -> None:
        nonlocal failed, write_failures, finished, audio_seconds
        if transcript.error is not None:
            failed += 1
            typer.echo(f"error: {transcript.error}", err=True)
        elif transcript.notice is not None:
            typer.echo(f"note: {transcript.notice}", err=True)
        if writer is not None:
            for problem in writer.write(transcript):
                write_failures += 1
                typer.echo(f"error: {problem}", err=True)
        if transcript.error is None:
            typer.echo(f"{transcript.id}\t{transcript.text}")
            finished += 1
        audio_seconds += transcript.duration

    try:
        own = transcribe(asr, items, options, progress=progress and main) if items else []
        for index, transcript in enumerate(own):
            if main:
                report(transcript)
                for other in spool.take() if ranks is not None else []:
                    report(other)
            else:
                spool.put(ranks.rank, index, transcript)
        if ranks is not None:
            ranks.barrier()  # every rank has finished its shard
            for other in spool.take() if main else []:
                report(other)
            if main:
                spool.directory.rmdir()
        complete = True
    finally:
        if writer is not None:
            kept = writer.close(complete=complete, order=order)
            if not complete and kept is not None:
                total = len(writer.done) + finished
                typer.echo(f"interrupted: {total} finished transcript(s) kept in {kept}; run the same command "
                           "again to decode the rest", err=True)
    if not main:
        return
    wall = time.time() - started
    rtf = wall / audio_seconds if audio_seconds else float("nan")
    workers = f" on {ranks.world_size} processes" if ranks is not None else ""
    typer.echo(f"decoded {to_decode - failed} of {to_decode} inputs{workers}: {audio_seconds:.1f} s of audio "
               f"in {wall:.1f} s (RTF {rtf:.3f})", err=True)
    if ref is not None:
        from xasr.score import default_set_name, load_hypotheses, load_references, score, write_reports

        try:
            result = score(load_references(ref), load_hypotheses(writer.jsonl_path))
            paths = write_reports(result, output_dir, name or default_set_name(ref), suffix)
        except (FileNotFoundError, ValueError, OSError) as e:
            _fail(str(e))
        typer.echo(f"{result.summary()} ({result.level} level)", err=True)
        for path in paths:
            typer.echo(f"wrote {path}", err=True)
    if write_failures:
        _fail(f"{write_failures} output file(s) could not be written (listed above)")
    if failed or problems:
        _fail(f"{failed + len(problems)} input(s) could not be decoded (listed above)")


@app.command("cache-features")
def cache_features_command(
    config: Path = typer.Argument(..., help="Recipe YAML; its model: section names the frozen encoder."),
    cuts: Path = typer.Option(..., help="Cuts manifest (.jsonl.gz) to encode."),
    output_dir: Path = typer.Option(..., help="Writes features.h5 and cuts.jsonl.gz (the cuts carrying them) here."),
    batch_duration: float = typer.Option(60.0, help="Seconds of audio per encoder batch."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 ...; default cuda when available."),
    override: List[str] = typer.Option([], "--set", help="Config override section.key=value, repeatable."),
) -> None:
    """Run the frozen encoder once over CUTS and store its outputs; train on OUTPUT_DIR/cuts.jsonl.gz.

    Cuts already cached in OUTPUT_DIR are not encoded again (delete the folder to recompute); a stopped
    run resumes from its last checkpoint (every 2,000 cuts). `torchrun --nproc-per-node N xasr
    cache-features ...` shares the cuts between N processes.
    """
    import torch
    from lhotse import CutSet

    from xasr.config import load_config_file
    from xasr.data.dataset import cache_encoder_features
    from xasr.distributed import DistributedContext
    from xasr.encoders import build_encoder

    if not cuts.is_file():
        _fail(f"{cuts}: no such file")
    try:
        cut_set = CutSet.from_file(cuts).to_eager()
        manifest = output_dir / "cuts.jsonl.gz"
        if manifest.is_file() and [c.id for c in CutSet.from_file(manifest)] == [c.id for c in cut_set]:
            typer.echo(f"encoder features already cached: {manifest}")
            return
        model_config, _ = load_config_file(config, 1, override)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if not model_config.encoder.frozen:
        _fail(f"{config}: the encoder is trained (frozen: false), so its outputs cannot be cached")
    ranks = DistributedContext(device) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    encoder = build_encoder(model_config.encoder).eval()
    if ranks is not None:
        encoder.to(ranks.device)
    else:
        encoder.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    cached = cache_encoder_features(encoder, cut_set, output_dir, batch_duration=batch_duration, ranks=ranks)
    if ranks is None or ranks.is_main:
        workers = f" on {ranks.world_size} processes" if ranks is not None else ""
        typer.echo(f"cached the encoder features of {len(cached)} cuts{workers}: {output_dir / 'cuts.jsonl.gz'}")


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

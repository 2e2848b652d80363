"""Sentences for synthetic speech from text that ships in Debian packages, as an `id<TAB>text` tsv.

Sources (installed by the tts_en recipe's stage 0):

- `wordnet`: the usage examples of WordNet 3.0's glosses (`wordnet-base`, WordNet licence:
  free use and redistribution), e.g. "the ball rolled down the hill": modern everyday English
  over a wide vocabulary;
- `fortunes`: the BSD fortune cookie files (`fortunes`, `fortunes-min`): quotations, jokes and
  proverbs, split into sentences, attributions dropped;
- `dictionary`: the English example sentences of the Ding German-English dictionary (`dict-de-en`,
  GPL-2+), e.g. "I was freezing my feet off at the bus stop.": modern, everyday, often spoken English;
- `games`: the dialogue and story text of two free games, FreedroidRPG (`freedroidrpg-data`, GPL-2+)
  and Endless Sky (`endless-sky-data`, GPL-3+), e.g. "What can I help you with?": modern conversation
  and narration. Only sentences whose every word is in the system word list (`wamerican`) are kept,
  which drops the games' invented names;
- `naev`: the mission and event text of the space game Naev (`naev-data`, GPL-3+), its translatable
  `_("...")` and `_([[...]])` strings, filtered by the same word list, e.g. "Do you accept the job?";
- `wikipedia`: the 206 English Wikipedia articles (2016, CC BY-SA) that gensim ships as test data
  (`pip install gensim==4.4.0`), markup, references and tables dropped: modern encyclopedic prose.

Only sentences a TTS voice reads as written are kept (letters and plain punctuation, no digits,
`min_words`..`max_words` words), each once, and none whose normalised words equal a sentence of an
`exclude` file (test references).
"""

from __future__ import annotations

import bz2
import gzip
import html
import importlib.util
import re
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from xasr.text import EnglishTextNormalizer
from xasr.io import write_atomic

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
DICTIONARY_DIR = Path("/usr/share/dictd")
FREEDROID_DIR = Path("/usr/share/freedroidrpg/data")
ENDLESS_SKY_DIR = Path("/usr/share/games/endless-sky/data")
NAEV_DIR = Path("/usr/share/naev/dat")
WORD_LIST = Path("/usr/share/dict/words")
WIKIPEDIA_SAMPLE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
SOURCES = ("wordnet", "fortunes", "dictionary", "games", "naev", "wikipedia")
APT_PACKAGES = {"wordnet": "wordnet-base", "fortunes": "fortunes fortunes-min", "dictionary": "dict-de-en",
                "games": "freedroidrpg-data endless-sky-data wamerican", "naev": "naev-data wamerican"}

_READABLE = re.compile(r"[A-Za-z][A-Za-z ,.;:!?'\"-]*")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"']))\s+(?=[\"']?[A-Z])")  # a closing quote stays
_ABBREVIATION = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|e\.g|i\.e)\.$", re.IGNORECASE)


def wordnet_examples(wordnet_dir: Optional[Path] = None) -> Iterator[tuple[str, str]]:
    """`(id, example)` for every quoted usage example in WordNet's data.{noun,verb,adj,adv}."""
    wordnet_dir = wordnet_dir or WORDNET_DIR
    for part in ("noun", "verb", "adj", "adv"):
        path = wordnet_dir / f"data.{part}"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; install WordNet (apt-get install {APT_PACKAGES['wordnet']})")
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                offset, _, rest = line.partition(" ")
                gloss = rest.partition(" | ")[2]
                for k, example in enumerate(re.findall(r'"([^"]+)"', gloss)):
                    yield f"wn-{part}-{offset}-{k}", example


def fortune_sentences(fortunes_dir: Optional[Path] = None) -> Iterator[tuple[str, str]]:
    """`(id, sentence)` from the fortune files: each cookie joined into one line, its attribution
    ("-- Mark Twain") dropped, then split into sentences."""
    fortunes_dir = fortunes_dir or FORTUNES_DIR
    files = sorted(p for p in fortunes_dir.glob("*") if p.is_file() and p.suffix not in (".dat", ".u8"))
    if not files:
        raise FileNotFoundError(f"{fortunes_dir}: no fortune files; install them "
                                f"(apt-get install {APT_PACKAGES['fortunes']})")
    for path in files:
        cookies = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
        for n, cookie in enumerate(cookies):
            lines = [line.strip() for line in cookie.splitlines()]
            lines = [line for line in lines if line and not line.startswith(("--", "- "))]
            for k, sentence in enumerate(split_sentences(" ".join(lines))):
                yield f"fortune-{path.name}-{n}-{k}", sentence


def dictionary_sentences(dictionary_dir: Optional[Path] = None) -> Iterator[tuple[str, str]]:
    """`(id, sentence)` for every English entry of the Ding dictionary that is a whole sentence (a
    capital first, . ! or ? last): the English headwords of english-german and the English
    translations (`;`-separated, indented) of german-english, in dictd's gzip format."""
    dictionary_dir = dictionary_dir or DICTIONARY_DIR
    for part, indented in (("english-german", False), ("german-english", True)):
        path = dictionary_dir / f"{part}.dict.dz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; install the Ding dictionary "
                                    f"(apt-get install {APT_PACKAGES['dictionary']})")
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                if line[:1].isspace() != indented:
                    continue
                for k, text in enumerate(line.split(";") if indented else [line]):
                    text = text.strip()
                    if text[:1].isupper() and text.endswith((".", "!", "?")):
                        yield f"ding-{part}-{n}-{k}", text


def game_sentences(freedroid_dir: Optional[Path] = None, endless_sky_dir: Optional[Path] = None,
                   word_list: Optional[Path] = None) -> Iterator[tuple[str, str]]:
    """`(id, sentence)` from FreedroidRPG's dialogues (its translatable `_"..."` strings) and Endless Sky's
    conversations and descriptions (its backtick strings), split into sentences; a sentence with a word
    that is not in `word_list` (an invented name, a placeholder) is left out."""
    freedroid_dir, endless_sky_dir = freedroid_dir or FREEDROID_DIR, endless_sky_dir or ENDLESS_SKY_DIR
    word_list = word_list or WORD_LIST
    for path in (freedroid_dir, endless_sky_dir, word_list):
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found; install the games' data and the word list "
                                    f"(apt-get install {APT_PACKAGES['games']})")
    words = read_word_list(word_list)
    sources = [("freedroid", freedroid_dir, "**/dialogs/*.lua", re.compile(r'_"((?:[^"\\\n]|\\.)*)"')),
               ("endless", endless_sky_dir, "**/*.txt", re.compile(r"`([^`]*)`"))]
    for game, root, pattern, strings in sources:
        for path in sorted(root.glob(pattern)):
            name = "-".join(path.relative_to(root).with_suffix("").parts).replace(" ", "_")
            text = path.read_text(encoding="utf-8", errors="replace")
            for n, match in enumerate(strings.finditer(text)):
                raw = match.group(1).replace('\\"', '"').replace("\\n", " ")
                for k, sentence in enumerate(split_sentences(raw)):
                    if all_known(sentence, words):
                        yield f"game-{game}-{name}-{n}-{k}", sentence


def naev_sentences(naev_dir: Optional[Path] = None, word_list: Optional[Path] = None) -> Iterator[tuple[str, str]]:
    """`(id, sentence)` from Naev's Lua scripts (missions, events, ...): its translatable strings
    `_("...")` and `_([[...]])`, split into sentences; a sentence with a word that is not in `word_list`
    or with a format placeholder (`%s`) is left out."""
    naev_dir, word_list = naev_dir or NAEV_DIR, word_list or WORD_LIST
    for path in (naev_dir, word_list):
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found; install Naev's data and the word list "
                                    f"(apt-get install {APT_PACKAGES['naev']})")
    words = read_word_list(word_list)
    strings = re.compile(r'_\(\s*(?:"((?:[^"\\\n]|\\.)*)"|\[(=*)\[(.*?)\]\2\])', re.DOTALL)
    for path in sorted(naev_dir.rglob("*.lua")):
        name = "-".join(path.relative_to(naev_dir).with_suffix("").parts).replace(" ", "_")
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, match in enumerate(strings.finditer(text)):
            raw = match.group(1) if match.group(1) is not None else match.group(3)
            for k, sentence in enumerate(split_sentences(raw.replace('\\"', '"').replace("\\n", " "))):
                if "%" not in sentence and all_known(sentence, words):
                    yield f"naev-{name}-{n}-{k}", sentence


def read_word_list(path: Path) -> set[str]:
    """The words of a word list (one a line, e.g. /usr/share/dict/words), lower case."""
    return set(path.read_text(encoding="utf-8", errors="replace").lower().split())


def all_known(sentence: str, words: set[str]) -> bool:
    """Whether every word of `sentence` is in `words` (lower case) and it holds no markup (`<`)."""
    tokens = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)?", sentence)
    return bool(tokens) and "<" not in sentence and all(t.lower() in words for t in tokens)


def wikipedia_sentences(dump: Optional[Path] = None) -> Iterator[tuple[str, str]]:
    """`(id, sentence)` from the prose paragraphs of a MediaWiki XML dump (bz2), by default the sample
    in gensim's test data: templates, references, tables, files, headings and lists dropped, links
    replaced by their text."""
    if dump is None:
        spec = importlib.util.find_spec("gensim")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("gensim is not installed; its test data holds the Wikipedia sample "
                                    "(pip install gensim==4.4.0)")
        dump = Path(list(spec.submodule_search_locations)[0]) / WIKIPEDIA_SAMPLE
    if not Path(dump).is_file():
        raise FileNotFoundError(f"{dump}: not found; give a MediaWiki XML dump (.xml.bz2)")
    with bz2.open(dump, "rt", encoding="utf-8", errors="replace") as f:
        xml = f.read()
    for page in re.finditer(r"<title>(.*?)</title>.*?<text[^>]*>(.*?)</text>", xml, re.DOTALL):
        title = re.sub(r"\W+", "_", page.group(1))
        for n, paragraph in enumerate(wiki_paragraphs(html.unescape(page.group(2)))):
            for k, sentence in enumerate(split_sentences(paragraph)):
                yield f"wiki-{title}-{n}-{k}", sentence


def wiki_paragraphs(markup: str) -> list[str]:
    """The prose paragraphs of one article's wiki markup, as plain text."""
    text = re.sub(r"<!--.*?-->|<ref[^>/]*/>|<ref[^>]*>.*?</ref>", " ", markup, flags=re.DOTALL)
    for nested in (r"\{\{[^{}]*\}\}", r"\{\|[^{}]*?\|\}"):  # templates, then tables, innermost first
        while True:
            text, count = re.subn(nested, " ", text)
            if not count:
                break

    def link(match: re.Match) -> str:
        target, _, label = match.group(1).partition("|")
        return "" if ":" in target else (label or target).split("|")[-1]

    while True:  # links, innermost first: a file's caption holds links of its own
        text, count = re.subn(r"\[\[([^\[\]]*)\]\]", link, text)
        if not count:
            break
    text = re.sub(r"\[https?://\S+ ?([^\]]*)\]", r"\1", text)
    text = re.sub(r"<[^>]+>|'{2,}", "", text)
    return [" ".join(line.split()) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith(("=", "*", "#", ":", ";", "|", "!", "{", "}"))]


def split_sentences(text: str) -> list[str]:
    """Split at . ! ? followed by a capital, except after a few abbreviations (Mr., Dr., e.g.)."""
    sentences, current = [], ""
    for piece in _SENTENCE_END.split(" ".join(text.split())):
        current = f"{current} {piece}".strip()
        if not _ABBREVIATION.search(current):
            sentences.append(current)
            current = ""
    return sentences + ([current] if current else [])


def clean_sentence(text: str, min_words: int = 4, max_words: int = 30) -> Optional[str]:
    """`text` with its first letter capitalised, or None when a voice would not read it as written."""
    text = " ".join(text.replace("`", "'").split()).strip(" -;:\"")
    if text.count('"') % 2:  # a quotation split across sentences: its marks are not said either way
        text = text.replace('"', "")
    if not _READABLE.fullmatch(text) or not min_words <= len(text.split()) <= max_words:
        return None
    if sum(c.isupper() for c in text) > max(3, len(text) // 10):  # SHOUTING, acronyms, code
        return None
    return text[0].upper() + text[1:]


def read_excluded(paths: Iterable[Path]) -> set[str]:
    """Normalised sentences of transcripts files (`path<TAB>speaker<TAB>text` or `id<TAB>text`) or
    of lhotse supervision or cut manifests (`*.jsonl.gz`, `*.jsonl`)."""
    normalize = EnglishTextNormalizer()
    excluded = set()
    for path in map(Path, paths):
        if path.name.endswith((".jsonl.gz", ".jsonl")):
            from lhotse import CutSet, load_manifest

            manifest = load_manifest(path)
            supervisions = [s for c in manifest for s in c.supervisions] if isinstance(manifest, CutSet) else manifest
            texts = [s.text or "" for s in supervisions]
        else:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise ValueError(f"{path}: not a text file; give a transcripts tsv or a lhotse manifest "
                                 "(*.jsonl.gz)") from None
            texts = [line.rsplit("\t", 1)[-1] for line in lines if line.strip()]
        excluded.update(normalize(text) for text in texts if text.strip())
    return excluded


def collect_sentences(sources: Sequence[str], exclude: Iterable[Path] = (), min_words: int = 4,
                      max_words: int = 30) -> list[tuple[str, str]]:
    """Cleaned, de-duplicated `(id, sentence)` of `sources` (names in SOURCES), none of `exclude`."""
    readers = {"wordnet": wordnet_examples, "fortunes": fortune_sentences, "dictionary": dictionary_sentences,
               "games": game_sentences, "naev": naev_sentences, "wikipedia": wikipedia_sentences}
    unknown = [s for s in sources if s not in readers]
    if unknown:
        raise ValueError(f"unknown text source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    normalize = EnglishTextNormalizer()
    seen = read_excluded(exclude)
    sentences = []
    for source in sources:
        for sentence_id, raw in readers[source]():
            text = clean_sentence(raw, min_words, max_words)
            key = normalize(text) if text else None
            if key and key not in seen:
                seen.add(key)
                sentences.append((sentence_id, text))
    return sentences


def write_sentences(sentences: Sequence[tuple[str, str]], path: Path) -> None:
    """Write an `id<TAB>text` tsv atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(f"{i}\t{t}\n" for i, t in sentences))

import bz2

import pytest
from typer.testing import CliRunner

from xasr.cli import app
from xasr.data import texts
from xasr.data.texts import clean_sentence, collect_sentences, split_sentences, write_sentences
from xasr.data.tts import read_sentences

WORDNET_LINE = ('02084071 05 n 01 dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; '
                '"the dog barked all night"; "a dog is a good friend to 2 children"\n')
COOKIE_FILE = """Don't ever look back. Something might be gaining on you.
\t\t-- Satchel Paige
%
Dr. Smith said it would rain. He was right!
%
FORTRAN IS A LANGUAGE FOR REAL PROGRAMMERS.
%
"""


@pytest.fixture
def debian_text(tmp_path, monkeypatch):
    wordnet, fortunes = tmp_path / "wordnet", tmp_path / "fortunes"
    wordnet.mkdir()
    fortunes.mkdir()
    (wordnet / "data.noun").write_text("  1 This software and database is being provided\n" + WORDNET_LINE)
    for part in ("verb", "adj", "adv"):
        (wordnet / f"data.{part}").write_text("")
    (fortunes / "people").write_text(COOKIE_FILE)
    (fortunes / "people.dat").write_bytes(b"\x00\x01")
    monkeypatch.setattr(texts, "WORDNET_DIR", wordnet)
    monkeypatch.setattr(texts, "FORTUNES_DIR", fortunes)
    return tmp_path


def test_split_sentences_keeps_abbreviations_together():
    assert split_sentences("Dr. Smith said it would rain. He was right!  It rained.") == [
        "Dr. Smith said it would rain.", "He was right!", "It rained."]


def test_clean_sentence_keeps_only_what_a_voice_reads_as_written():
    assert clean_sentence("the dog barked all night") == "The dog barked all night"
    assert clean_sentence("a dog is a good friend to 2 children") is None  # digits
    assert clean_sentence("FORTRAN IS A LANGUAGE FOR REAL PROGRAMMERS.") is None  # shouting
    assert clean_sentence("too short here") is None
    assert clean_sentence("see http://example.org/page for more") is None
    assert clean_sentence(" ".join(["word"] * 31)) is None
    assert clean_sentence('"Do you accept the job?"') == "Do you accept the job?"  # a quoted line
    assert clean_sentence('He said "go home now.') == "He said go home now."  # half a quotation
    assert clean_sentence('He said "go home" and left.') == 'He said "go home" and left.'


def test_collect_sentences_cleans_dedups_and_excludes(debian_text):
    exclude = debian_text / "transcripts.tsv"
    exclude.write_text("a.wav\tspk\tHe was right!\n")
    sentences = collect_sentences(["wordnet", "fortunes", "wordnet"], exclude=[exclude])
    assert [t for _, t in sentences] == ["The dog barked all night", "Don't ever look back.",
                                         "Something might be gaining on you.", "Dr. Smith said it would rain."]
    assert len({i for i, _ in sentences}) == len(sentences)
    assert sentences[0][0] == "wn-noun-02084071-0"


def write_dictd(path, entries):
    import gzip

    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("00-database-short\n     English - German Dictionary\n")
        for headword, translations in entries:
            f.write(f"{headword}\n\n   {translations}\n")


def test_dictionary_sentences_are_the_whole_english_sentences_of_both_directions(tmp_path, monkeypatch):
    write_dictd(tmp_path / "english-german.dict.dz", [
        ("demolition company", "Abbruchfirma {f}"),
        ("I was freezing my feet off at the bus stop.", "Ich habe mir die Füße abgefroren."),
        ("Is it true?", "Stimmt das?")])
    write_dictd(tmp_path / "german-english.dict.dz", [
        ("Abend", "evening; eve"),
        ("Es regnet.", "It is raining hard today.; It rains a lot here!")])
    monkeypatch.setattr(texts, "DICTIONARY_DIR", tmp_path)
    assert [t for _, t in texts.dictionary_sentences()] == [
        "I was freezing my feet off at the bus stop.", "Is it true?", "It is raining hard today.",
        "It rains a lot here!"]
    assert [t for _, t in collect_sentences(["dictionary"])] == [  # "Is it true?" has 3 words
        "I was freezing my feet off at the bus stop.", "It is raining hard today.", "It rains a lot here!"]
    monkeypatch.setattr(texts, "DICTIONARY_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="dict-de-en"):
        collect_sentences(["dictionary"])


def test_game_sentences_keep_dialogue_whose_words_are_all_in_the_word_list(tmp_path, monkeypatch):
    dialogs = tmp_path / "freedroid" / "storyline" / "act1" / "dialogs"
    dialogs.mkdir(parents=True)
    (dialogs / "Tania.lua").write_text('Npc:says(_"What can I help you with? Ask Zorblax.")\n'
                                       'play_sound("effects/Menu_Item_Selected_Sound_1.ogg")\n'
                                       'Tux:says(_"I\'ll be going then.", "NO_WAIT")\n')
    sky = tmp_path / "sky" / "missions"
    sky.mkdir(parents=True)
    (sky / "intro.txt").write_text('conversation\n\t`You sign your name one final time. The Quarg avoid conflict.`\n'
                                   '\tscene "scene/bank"\n\t`Welcome aboard the <ship>.`\n')
    word_list = tmp_path / "words"
    word_list.write_text("\n".join(["a", "ask", "be", "can", "final", "going", "help", "I'll", "I", "name", "one",
                                    "sign", "then", "the", "time", "what", "with", "you", "your", "conflict",
                                    "avoid", "welcome", "aboard", "ship"]))
    monkeypatch.setattr(texts, "FREEDROID_DIR", tmp_path / "freedroid")
    monkeypatch.setattr(texts, "ENDLESS_SKY_DIR", tmp_path / "sky")
    monkeypatch.setattr(texts, "WORD_LIST", word_list)
    assert [t for _, t in texts.game_sentences()] == [  # invented names and placeholders are left out
        "What can I help you with?", "I'll be going then.", "You sign your name one final time."]
    act2 = tmp_path / "freedroid" / "storyline" / "act2" / "dialogs"
    act2.mkdir(parents=True)
    (act2 / "Tania.lua").write_text('Npc:says(_"What can I help you with?")\n')  # the same name in another act
    ids = [i for i, _ in texts.game_sentences()]
    assert len(set(ids)) == len(ids) == 4
    monkeypatch.setattr(texts, "WORD_LIST", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="wamerican"):
        collect_sentences(["games"])


def test_naev_sentences_keep_translatable_strings_of_known_words(tmp_path, monkeypatch):
    missions = tmp_path / "dat" / "missions" / "neutral"
    missions.mkdir(parents=True)
    (missions / "cargo.lua").write_text(
        'misn_title = _("Deliver the cargo to %s")\n'
        'text = _([[The captain nods. "Do you accept the job?"\n\nHe waits for Zorblax.]])\n'
        'tk.msg(_("Thanks"), _("You have done well."))\n'
        'sound = "snd/sounds/jump.ogg"\n')
    word_list = tmp_path / "words"
    word_list.write_text("\n".join(["the", "captain", "nods", "do", "you", "accept", "job", "he", "waits", "for",
                                    "thanks", "have", "done", "well", "deliver", "cargo", "to"]))
    monkeypatch.setattr(texts, "NAEV_DIR", tmp_path / "dat")
    monkeypatch.setattr(texts, "WORD_LIST", word_list)
    sentences = list(texts.naev_sentences())
    assert [t for _, t in sentences] == [  # placeholders (%s) and invented names are left out
        "The captain nods.", '"Do you accept the job?"', "Thanks", "You have done well."]
    assert sentences[0][0] == "naev-missions-neutral-cargo-1-0"
    assert [t for _, t in collect_sentences(["naev"])] == [  # cleaned: 4+ words, outer quotes dropped
        "Do you accept the job?", "You have done well."]
    monkeypatch.setattr(texts, "NAEV_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="naev-data"):
        collect_sentences(["naev"])


WIKI_PAGE = """<mediawiki><page><title>Albedo</title><revision><text xml:space="preserve">\
{{Other uses|Albedo (disambiguation)}}
{{Infobox|name={{nested|x}}}}
'''Albedo''' is the [[reflection (physics)|reflectivity]] of a surface.&lt;ref&gt;Coakley, J. A. 2003&lt;/ref&gt; \
It is measured on a scale from [[zero]] to one.
[[File:Albedo-e hg.svg|thumb|Percentage of [[light]] reflected]]
== History ==
* A list item that is not prose at all.
{| class="wikitable"
| A table cell that is not prose either.
|}
Fresh snow reflects most of the light, as [http://example.org an old study] showed.
[[Category:Climate forcing]]
</text></revision></page></mediawiki>"""


def test_wikipedia_sentences_keep_prose_without_markup(tmp_path):
    dump = tmp_path / "wiki.xml.bz2"
    dump.write_bytes(bz2.compress(WIKI_PAGE.encode()))
    sentences = list(texts.wikipedia_sentences(dump))
    assert [t for _, t in sentences] == [
        "Albedo is the reflectivity of a surface.", "It is measured on a scale from zero to one.",
        "Fresh snow reflects most of the light, as an old study showed."]
    assert [i for i, _ in sentences][:2] == ["wiki-Albedo-0-0", "wiki-Albedo-0-1"]
    with pytest.raises(FileNotFoundError, match="MediaWiki"):
        list(texts.wikipedia_sentences(tmp_path / "none.xml.bz2"))


def test_collect_sentences_names_a_missing_source(tmp_path, monkeypatch):
    monkeypatch.setattr(texts, "WORDNET_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        collect_sentences(["wordnet"])
    with pytest.raises(ValueError, match="unknown text source"):
        collect_sentences(["gutenberg"])


def test_written_sentences_read_back_for_tts(tmp_path):
    path = tmp_path / "text" / "s.tsv"
    write_sentences([("wn-noun-1-0", "The dog barked all night"), ("fortune-x-1-0", "He was right!")], path)
    assert read_sentences(path) == [("wn-noun-1-0", "The dog barked all night"), ("fortune-x-1-0", "He was right!")]


def test_prepare_text_command(debian_text):
    out = debian_text / "out.tsv"
    result = CliRunner().invoke(app, ["prepare", "text", str(out), "--source", "fortunes"])
    assert result.exit_code == 0, result.output
    assert "3 sentences from fortunes" in result.output
    assert len(read_sentences(out)) == 3
    result = CliRunner().invoke(app, ["prepare", "text", str(out), "--source", "fortunes", "--min-words", "40"])
    assert result.exit_code != 0 and "no sentence passed" in result.output
    assert len(read_sentences(out)) == 3  # nothing already written is lost


def test_prepare_text_missing_exclude_file(tmp_path):
    out, missing = tmp_path / "o.tsv", tmp_path / "no.tsv"
    result = CliRunner().invoke(app, ["prepare", "text", str(out), "--exclude", str(missing)])
    assert result.exit_code != 0 and "no such file" in result.output
    assert not out.exists()


def test_excluded_references_come_from_manifests_too(tmp_path):
    import gzip

    from lhotse import SupervisionSegment, SupervisionSet

    from xasr.data.texts import read_excluded

    SupervisionSet.from_segments([SupervisionSegment("u1", "r1", 0, 1, text="He was right!")]).to_file(
        tmp_path / "sups.jsonl.gz")
    assert read_excluded([tmp_path / "sups.jsonl.gz"]) == read_excluded([_tsv(tmp_path, "a.wav\tspk\tHe was right!\n")])
    (tmp_path / "binary.tsv").write_bytes(gzip.compress(b"not text"))
    with pytest.raises(ValueError, match="binary.tsv: not a text file"):
        read_excluded([tmp_path / "binary.tsv"])


def _tsv(tmp_path, text):
    path = tmp_path / "t.tsv"
    path.write_text(text)
    return path

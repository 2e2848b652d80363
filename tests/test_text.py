import pytest

from xasr.text import (
    BasicTextNormalizer,
    ChineseTextNormalizer,
    EnglishTextNormalizer,
    IdentityNormalizer,
    SpokenTextNormalizer,
    get_normalizer,
    is_chinese,
)

english = EnglishTextNormalizer()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("twenty one", "21"),
        ("Twenty-one", "21"),
        ("one hundred and five", "105"),
        ("zero", "0"),
        ("two thousand and twenty", "2020"),
        ("one million two hundred thousand", "1200000"),
        ("nineteen hundred", "1900"),
        ("hundred", "100"),
        # a word that cannot continue a number starts the next one
        ("eighteen eighteen", "18 18"),
        ("one two three", "1 2 3"),
        ("zero seven", "0 7"),
        ("twenty fifteen", "20 15"),
        # "and" only joins inside a number
        ("one and two", "1 and 2"),
        ("five hundred and ten cats", "510 cats"),
        ("one hundred and", "100 and"),
        ("1 2 3", "1 2 3"),
    ],
)
def test_english_numbers(text, expected):
    assert english(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello world"),
        ("[noise] hello (laughs) there <unk>", "hello there"),
        ("um so uh I think hmm mhm yes", "so i think yes"),
        ("It's 3.5 percent of 1,000 people.", "it is 3.5 percent of 1000 people"),
        ("I won't go; they're John's friends", "i will not go they are johns friends"),
        ("can't, cannot, I'd, we've, I'm, you'll, isn't", "can not can not i would we have i am you will is not"),
        ("The colour of the centre", "the color of the center"),
        ("Mr. Smith met Dr Jones at the café", "mister smith met doctor jones at the cafe"),
        ("It\u2019s done \u2014 really?!", "it is done really"),
        ("  lots   of\tspace\n", "lots of space"),
        ("", ""),
    ],
)
def test_english_text(text, expected):
    assert english(text) == expected


def test_english_makes_spelled_and_written_numbers_match():
    assert english("Twenty-one Apples!") == english("21 apples")
    assert english("ONE") == english("1")


def test_chinese_normalizer():
    chinese = ChineseTextNormalizer()
    assert chinese("你好，世界！ 今天。") == "你好世界今天"
    assert chinese("ＡＢＣ ａｂｃ １２３") == "ABCABC123"  # full width -> half width, Latin uppercased
    assert chinese("《三体》「好」、ok?") == "三体好OK"


def test_basic_and_identity():
    assert BasicTextNormalizer()("Hello,  World! don't stop-now") == "hello world dont stop now"
    assert IdentityNormalizer()("Keep  It!") == "Keep  It!"


def test_spoken_keeps_what_is_said_and_drops_unsaid_punctuation():
    spoken = SpokenTextNormalizer()
    assert spoken("nineteen sixty-three, merely to disarm her;") == "nineteen sixty three merely to disarm her"
    assert spoken('He said: "don\u2019t" -- it\'s 3.5% of $1,000.') == "He said don't it's 3.5% of $1,000"
    assert spoken("The Jones' house (old). Rock'n'roll!") == "The Jones house old Rock'n'roll"
    assert spoken("...") == ""


def test_get_normalizer():
    assert isinstance(get_normalizer("english"), EnglishTextNormalizer)
    assert isinstance(get_normalizer("chinese"), ChineseTextNormalizer)
    assert isinstance(get_normalizer("basic"), BasicTextNormalizer)
    assert isinstance(get_normalizer("spoken"), SpokenTextNormalizer)
    assert isinstance(get_normalizer("none"), IdentityNormalizer)
    with pytest.raises(ValueError, match="choose one of english, chinese, basic, spoken, none"):
        get_normalizer("french")


def test_is_chinese():
    assert is_chinese(["甚至出现交易几乎停滞的情况", "一二三"])
    assert is_chinese(["你好 world"])  # two CJK characters outweigh one Latin word
    assert not is_chinese(["hello world", "twenty one"])
    assert not is_chinese(["hello 世界 ok"])
    assert not is_chinese([])
    assert not is_chinese(["", "  "])

"""Names people can trust (issue 12 item 5): honest names pass, invisible tricks are refused, look-alikes clash."""

from __future__ import annotations

import unicodedata
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcrp_lab import names
from tcrp_lab.names import (
    CONFUSABLES_VERSION, MAX_ROOM_BYTES, MAX_ROOM_CHARS, MAX_USERNAME_BYTES, MAX_USERNAME_CHARS, clash_keys,
    clashes, normalize_name, skeleton,
)
from tcrp_lab.protocol import ErrorCode, ProtocolError

EXAMPLES = settings(max_examples=400, deadline=None)
LIMITS = {"username": (MAX_USERNAME_CHARS, MAX_USERNAME_BYTES), "room": (MAX_ROOM_CHARS, MAX_ROOM_BYTES)}


def refusal(value: object, kind: str = "username") -> str:
    with pytest.raises(ProtocolError) as err:
        normalize_name(value, kind)
    assert err.value.code is ErrorCode.INVALID_NAME
    return err.value.reason


def accepted_or_refused(value: str, kind: str = "username") -> str | None:
    try:
        return normalize_name(value, kind)
    except ProtocolError as err:
        assert err.code is ErrorCode.INVALID_NAME and err.reason
        return None


# --- honest names ------------------------------------------------------------------------------

HONEST = [  # (as typed, as stored, who)
    ("alice", "alice", "ASCII"),
    ("さくら", "さくら", "Japanese hiragana"),
    ("山田太郎", "山田太郎", "Japanese kanji"),
    ("ｻｸﾗ", "サクラ", "half-width katakana, stored as NFKC full-width"),
    ("김철수", "김철수", "Korean"),
    ("محمد", "محمد", "Arabic"),
    ("مُحَمَّد", "مُحَمَّد", "Arabic with vowel marks (two different marks on one letter)"),
    ("अनीता", "अनीता", "Hindi: Devanagari vowel signs are combining marks"),
    ("ශ්‍රී", "ශ්‍රී", "Sinhala: a zero width joiner after a virama (RFC 5892 A.2)"),
    ("דָּוִד", "דָּוִד", "Hebrew with points"),
    ("Nguyễn", "Nguyễn", "Vietnamese: two marks on one letter"),
    ("Ольга", "Ольга", "Cyrillic, one script"),
    ("สมชาย", "สมชาย", "Thai"),
    ("🐱", "🐱", "an emoji"),
    ("❤️", "❤️", "an emoji with variation selector 16"),
    ("👩🏽‍💻", "👩🏽‍💻", "an emoji ZWJ sequence with a skin tone"),
    ("👨‍👩‍👧", "👨‍👩‍👧", "the family emoji: ZWJ between emoji"),
    ("🏳️‍🌈", "🏳️‍🌈", "the rainbow flag: VS16 then ZWJ"),
    ("🇯🇵", "🇯🇵", "a flag: regional indicators"),
    ("José", "José", "accented Latin, NFC"),
    ("Jose\u0301", "José", "accented Latin typed decomposed (NFD), stored composed"),
    ("Zoe\u0308", "Zoë", "Zoë in NFD"),
    ("Mary Ann", "Mary Ann", "an inner space"),
    ("Mary\u00a0Ann", "Mary Ann", "a no-break space, NFKC to a space"),
    ("O'Brien", "O'Brien", "an apostrophe"),
]


@pytest.mark.parametrize("typed, stored, who", HONEST, ids=[h[2] for h in HONEST])
def test_an_honest_name_is_accepted_as_its_nfkc_form(typed, stored, who):
    for kind in ("username", "room"):
        assert normalize_name(typed, kind) == stored == unicodedata.normalize("NFKC", typed)


def test_two_different_honest_names_do_not_clash():
    pairs = [("alice", "alicia"), ("さくら", "さくらこ"), ("さくら", "サクラ"), ("Ali", "All"), ("José", "Jose"),
             ("bob", "bob2"), ("山田", "山田太郎"), ("Anna", "Hanna"), ("🐱", "🐶"), ("👨‍👩‍👧", "👨‍👩‍👦"),
             ("Mary Ann", "MaryAnn")]
    for a, b in pairs:
        assert not clashes(normalize_name(a, "username"), normalize_name(b, "username")), (a, b)


def test_names_at_the_byte_limit_are_accepted_in_every_script():
    for kind, (max_chars, max_bytes) in LIMITS.items():
        for unit in ("a", "é", "さ", "🐱"):
            size = len(unit.encode())
            fits = unit * min(max_chars, max_bytes // size)
            assert normalize_name(fits, kind) == fits
            assert "bytes" in refusal(fits + unit, kind) or "characters" in refusal(fits + unit, kind)


# --- look-alikes and invisible tricks ----------------------------------------------------------

CLASH, REFUSED = "clash", "refused"
LOOK_ALIKES = [  # (honest name, impostor, verdict, why)
    ("alice", "\u0430lice", CLASH, "Cyrillic а (U+0430) for a"),
    ("alice", "alic\u0435", CLASH, "Cyrillic е (U+0435) for e"),
    ("alice", "\u0430li\u0441\u0435", CLASH, "three Cyrillic letters: а, с, е"),
    ("alice", "\u03b1lice", CLASH, "Greek alpha for a"),
    ("alice", "\u0251lice", CLASH, "Latin alpha ɑ for a"),
    ("alice", "aIice", CLASH, "capital I for l (UTS #39 maps both to l)"),
    ("alice", "a1ice", CLASH, "digit one for l"),
    ("alice", "a|ice", CLASH, "vertical line for l"),
    ("alice", "a\u04c0ice", CLASH, "Cyrillic palochka Ӏ for l"),
    ("alice", "al\u0131ce", CLASH, "dotless ı for i"),
    ("alice", "ａｌｉｃｅ", CLASH, "fullwidth letters: NFKC makes them alice"),
    ("alice", "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e", CLASH, "mathematical bold 𝐚𝐥𝐢𝐜𝐞: NFKC"),
    ("alice", "a\u217cice", CLASH, "small roman numeral fifty ⅼ for l"),
    ("alice", "ALICE", CLASH, "upper case: names compare case-insensitively"),
    ("alice", "Alice", CLASH, "a capital first letter"),
    ("alice", "alice\ufe0f", CLASH, "a variation selector: invisible, dropped by the skeleton"),
    ("alice", "alice\u200b", REFUSED, "zero width space"),
    ("alice", "\u202eecila", REFUSED, "right-to-left override shows ecila as alice"),
    ("alice", "\u2066alice\u2069", REFUSED, "bidi isolates"),
    ("alice", "alice\u00ad", REFUSED, "soft hyphen"),
    ("alice", "al\u200dice", REFUSED, "zero width joiner between letters"),
    ("alice", "al\u200cice", REFUSED, "zero width non-joiner between letters"),
    ("alice", "alice\u2060", REFUSED, "word joiner"),
    ("alice", "\ufeffalice", REFUSED, "byte order mark"),
    ("alice", "alice\U000e0041", REFUSED, "a tag character (ASCII smuggling)"),
    ("alice", "alice\u3164", REFUSED, "Hangul filler, drawn blank"),
    ("alice", "alice\u2800", REFUSED, "braille blank"),
    ("alice", "alice ", REFUSED, "a trailing space"),
    ("alice", "alice\u3000", REFUSED, "an ideographic space, a trailing space once NFKC"),
    ("alice", "alice\x1b[0m", REFUSED, "an escape sequence"),
    ("alice", "alice\u0085", REFUSED, "a C1 control (next line)"),
    ("alice", "alice\u2028", REFUSED, "a line separator"),
    ("alice", "alice\ue000", REFUSED, "a private-use character"),
    ("alice", "ali\u0301\u0301ce", REFUSED, "the same accent twice looks like once"),
    ("david", "\u0501avi\u0501", CLASH, "Cyrillic komi de ԁ for d"),
    ("paypal", "\U0001d52d\U0001d4b6\u1eff\U0001d561\U0001d552\u2113", CLASH, "UTS #39's paypal in math letters"),
    ("さくら", "さ\u3008ら", CLASH, "left angle bracket 〈 for く"),
    ("さくら", "さ\u27e8ら", CLASH, "mathematical left angle bracket ⟨ for く"),
    ("さくら", "さ\u2329ら", CLASH, "left-pointing angle bracket 〈, NFKC to 〈"),
    ("さくら", "さ\u31dbら", CLASH, "CJK stroke PD ㇛ for く"),
    ("さくら", "さ\U00021fe8ら", CLASH, "the ideograph 𡿨 for く"),
    ("さくら", "さくら\ufe0f", CLASH, "a variation selector after a kana"),
    ("さくら", "さくら\u200b", REFUSED, "zero width space"),
    ("さくら", "さ\u200dくら", REFUSED, "zero width joiner between kana"),
    ("さくら", "\u202eらくさ", REFUSED, "right-to-left override shows らくさ as さくら"),
    ("さくら", "さくら\u3000", REFUSED, "a trailing ideographic space"),
    ("さくら", "さくら\u3164", REFUSED, "Hangul filler"),
    ("エリカ", "工リ力", CLASH, "kanji 工 (work) and 力 (power) for katakana エ and カ"),
    ("エリカ", "ｴﾘｶ", CLASH, "half-width katakana: NFKC"),
    ("エリカ", "㋓㋷㋕", CLASH, "circled katakana: NFKC"),
    ("エリカ", "エリ\u2f12", CLASH, "Kangxi radical power ⼒ for カ"),
    ("へいわ", "ヘいわ", CLASH, "katakana ヘ for hiragana へ"),
    ("ニコ", "二コ", CLASH, "kanji 二 (two) for katakana ニ"),
]


@pytest.mark.parametrize("honest, impostor, verdict, why", LOOK_ALIKES, ids=[x[3] for x in LOOK_ALIKES])
def test_a_look_alike_is_refused_or_clashes(honest, impostor, verdict, why):
    assert normalize_name(honest, "username") == honest
    if verdict == REFUSED:
        assert refusal(impostor)
        assert refusal(impostor, "room")
    else:
        stored = normalize_name(impostor, "username")
        assert clashes(stored, honest) and clashes(honest, stored)
        assert not clash_keys(stored).isdisjoint(clash_keys(honest))


def test_there_are_at_least_sixteen_look_alikes_of_alice_and_of_japanese_names():
    japanese = {"さくら", "エリカ", "へいわ", "ニコ"}
    assert sum(honest == "alice" for honest, *_ in LOOK_ALIKES) >= 16
    assert sum(honest in japanese for honest, *_ in LOOK_ALIKES) >= 16


# --- what a refusal says -----------------------------------------------------------------------

def test_a_refusal_names_the_character_its_position_and_what_to_do():
    reason = refusal("alice\u200b")
    assert "U+200B ZERO WIDTH SPACE" in reason and "character 6" in reason and "remove it" in reason
    reason = refusal("\u202eecila")
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in reason and "character 1" in reason and "order" in reason
    reason = refusal("al\u200dice")
    assert "U+200D ZERO WIDTH JOINER" in reason and "between two emoji" in reason
    assert "U+D800 <surrogate>" in refusal("a\ud800") and "whole character" in refusal("a\ud800")
    assert "U+0007 <control>" in refusal("a\x07")
    assert "unassigned" in refusal("a\U0010fffd\U000e0fff") or "private-use" in refusal("a\U0010fffd")
    assert "U+3164 HANGUL FILLER" in refusal("\u3164")  # as typed, not its NFKC form U+1160
    assert "U+1680 OGHAM SPACE MARK" in refusal("a\u1680b") and "U+0020" in refusal("a\u1680b")


def test_a_refusal_says_which_limit_and_by_how_much():
    assert "the username is 33 characters long" in refusal("x" * 33) and "limit is 32" in refusal("x" * 33)
    assert "the room name is 65 characters long" in refusal("x" * 65, "room")
    reason = refusal("さ" * 22)
    assert "66 bytes" in reason and "limit is 64 bytes" in reason
    reason = refusal("\ufdfa\ufdfa")  # one character each, 18 once NFKC
    assert "36 characters long once normalised" in reason
    assert "empty" in refusal("")
    assert "must be text (a JSON string), not int" in refusal(7)
    assert "not NoneType" in refusal(None)


def test_spaces_and_marks_have_their_own_reasons():
    assert "starts with a space" in refusal(" alice")
    assert "ends with a space" in refusal("alice\u3000")
    assert "two spaces in a row after character 4" in refusal("Mary  Ann")
    assert "U+0301 COMBINING ACUTE ACCENT" in refusal("\u0301alice") and "combining mark" in refusal("\u0301alice")
    assert "twice in a row" in refusal("e\u0301\u0301")
    assert "more than 4 combining marks" in refusal("e\u0300\u0301\u0302\u0303\u0304")
    assert normalize_name("e\u0300\u0301\u0302\u0303", "username")  # four different marks are fine


def test_an_input_much_longer_than_any_name_is_refused_before_it_is_normalised():
    reason = refusal("a" + "\u0301\u0316" * 30000)  # NFC reorders such a run in quadratic time
    assert "60001 characters long" in reason


def test_only_rooms_and_usernames_are_kinds_of_name():
    with pytest.raises(ValueError):
        normalize_name("alice", "nickname")


# --- the skeleton ------------------------------------------------------------------------------

def test_the_skeleton_follows_uts39_nfd_map_nfd_dropping_default_ignorables():
    assert skeleton("\u0430lice") == skeleton("aIice") == skeleton("a1ice") == "alice"
    assert skeleton("ALICE") == "ALlCE"  # case-sensitive, as the standard's
    assert skeleton("m") == "rn"  # a prototype can be several characters
    assert skeleton("é") == skeleton("e\u0301") == "e\u0301"  # NFD before and after
    assert skeleton("alice\ufe0f\u200b\u00ad") == "alice"  # default ignorables dropped
    assert skeleton("") == ""
    # Repeated until stable: ҋ's prototype is й + U+0326, and й decomposes to и + U+0306.
    assert skeleton("\u048b") == skeleton("\u0439\u0326") == skeleton(skeleton("\u048b"))


def test_the_case_key_is_the_skeleton_of_the_case_fold():
    assert clash_keys("ALICE") == {("look", "ALlCE"), ("case", "alice")}
    assert clash_keys("alice") == {("look", "alice"), ("case", "alice")}


def test_the_confusables_data_is_the_version_the_module_names_and_is_idempotent():
    text = resources.files("tcrp_lab").joinpath("confusables.txt").read_text(encoding="utf-8")
    assert f"security/{CONFUSABLES_VERSION}/confusables.txt" in text
    sources = [chr(int(line.split(";")[0], 16)) for line in text.splitlines() if line and line[0] != "#"]
    assert len(sources) == len(set(sources)) > 6000
    for ch in sources:  # a skeleton is a fixed point: prototypes are not themselves confusable
        assert skeleton(skeleton(ch)) == skeleton(ch), f"U+{ord(ch):04X}"


def test_every_invisible_character_is_refused_or_dropped_by_the_skeleton():
    # Default_Ignorable_Code_Point (UCD 17.0.0) and the module's blank characters.
    invisible = [chr(cp) for first, last in names._DEFAULT_IGNORABLE for cp in range(first, last + 1)]
    for ch in invisible + sorted(names.INVISIBLE):
        name = accepted_or_refused(f"🐱{ch}🐱")
        assert name is None or skeleton(name) == skeleton("🐱🐱"), f"U+{ord(ch):04X}"


# --- properties over any input -----------------------------------------------------------------

TRICKY = "\u200b\u200c\u200d\u00ad\u202e\u2066\ufe0f\u0301\u0308\u094d\u3099 \u00a0\u3000\u1680\t\n\x1b\x85" \
         "\u3164\u2800\ue000\ud800\udfff\ufdfa\ufb01ａｌｉｃｅ\u0430\u0131Iil1|\U0001f431\U0001f469\U0001f3fd\U0001f4bb" \
         "\u2764\U000e0041さくら工力ｻｸﾗ\u2122"
any_text = st.text(st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"]),
                             st.sampled_from(TRICKY)), max_size=80)


@EXAMPLES
@given(any_text, st.sampled_from(["username", "room"]))
def test_any_string_is_either_a_valid_name_or_refused_with_invalid_name(value, kind):
    name = accepted_or_refused(value, kind)
    if name is not None:
        max_chars, max_bytes = LIMITS[kind]
        assert 1 <= len(name) <= max_chars
        assert len(name.encode("utf-8")) <= max_bytes
        assert unicodedata.normalize("NFKC", name) == name
        assert normalize_name(name, kind) == name
        assert skeleton(skeleton(name)) == skeleton(name)
        assert clashes(name, value)  # the stored name is the typed one, as far as anyone can see


@EXAMPLES
@given(st.one_of(st.integers(), st.binary(), st.none(), st.lists(st.text())))
def test_anything_but_a_string_is_refused(value):
    assert "JSON string" in refusal(value)


@EXAMPLES
@given(any_text, any_text)
def test_clashes_is_symmetric_and_reflexive(a, b):
    assert clashes(a, b) == clashes(b, a)
    assert clashes(a, a) and clashes(b, b)


honest_alphabet = st.sampled_from(list("abcXYZ019-_.'Ééñßさくらカタカナ山田太郎한글محمد ") +
                                  ["अनीता", "🐱", "❤️", "👩‍💻", "🇯🇵"])


@EXAMPLES
@given(st.lists(honest_alphabet, min_size=1, max_size=40), st.sampled_from(["username", "room"]))
def test_honest_names_within_the_limits_are_accepted_unchanged(parts, kind):
    name = "".join(parts).strip()
    max_chars, max_bytes = LIMITS[kind]
    if name and "  " not in name and len(name) <= max_chars and len(name.encode()) <= max_bytes:
        assert normalize_name(name, kind) == name
    else:
        accepted_or_refused(name, kind)

"""Names people can trust: which usernames and room names TCRP accepts, and which two clash.

Pure functions, no I/O (the sans-IO core of TCRP.md §3). A name from the network goes through
:func:`normalize_name` once; what it returns is the name from then on, shown and compared as is.

**Acceptable names** (:func:`normalize_name`):

1. The name is put in Normalization Form KC (NFKC, `UAX #15`_): compatibility characters become their
   ordinary forms, so fullwidth ``ａｌｉｃｅ`` is ``alice``, half-width ``ｻｸﾗ`` is ``サクラ`` and a
   decomposed ``Zoe`` + U+0308 is ``Zoë``. The limits below count the normalised name, because
   NFKC can make a name longer (U+FDFA, one character, becomes 18).
2. 1-32 characters and at most 64 UTF-8 bytes for a username, 1-64 characters and 128 bytes for a
   room name: byte limits keep every datagram under 4096 bytes whatever the script.
3. No character that cannot be seen or that changes how other text is shown: controls (Cc),
   format characters (Cf: zero-width space, soft hyphen, bidi embeddings, overrides, isolates and
   marks, byte order mark, tags...), surrogates (Cs), private use (Co), unassigned code points
   (Cn, in the Unicode version of the running Python), line and paragraph separators (Zl, Zp), and
   the few non-Cf characters that render as blank or not at all (:data:`INVISIBLE`: the Hangul
   fillers, which the "invisible name" trick uses, the braille blank, the combining grapheme
   joiner...). Two exceptions keep honest names working, as RFC 5892's CONTEXTJ rules do: a zero
   width joiner inside an emoji sequence (👩‍💻, 👨‍👩‍👧), and a zero width (non-)joiner after a
   virama (Sinhala ශ්‍රී). Variation selectors stay (❤️ is U+2764 U+FE0F; Japanese names use
   ideographic variation sequences); they are invisible, so the skeleton drops them.
4. Spaces: only U+0020, one at a time, not at either end (NFKC turns no-break and ideographic
   spaces into it).
5. Combining marks: not first (a mark would sit on whatever is shown before the name), never the
   same nonspacing mark twice in a row (it looks like one) and at most four in a row (more draws
   over the lines around it), as UTS #39 §5.4 suggests.

**Clashes** (:func:`clash_keys`, :func:`clashes`): two names clash when they look alike or differ
only in case. "Look alike" is `UTS #39`_ §4: equal confusable skeletons (:func:`skeleton`), so
Cyrillic ``аlice``, ``aIice`` (capital I) and ``alice`` clash. The skeleton is deliberately case
sensitive (it maps ``I`` to ``l``), so case is compared with a second key, the skeleton of the case
fold (``ALICE`` and ``Alice`` clash with ``alice``), as the Ergo IRC server does. No single key can
do both without also merging ``i`` and ``l`` (``Ali`` and ``All``).

The confusable data is Unicode's confusables.txt 17.0.0, shipped as ``confusables.txt`` beside
this module (its header says how it was made). It is read on the first call of :func:`skeleton`.

.. _UAX #15: https://www.unicode.org/reports/tr15/
.. _UTS #39: https://www.unicode.org/reports/tr39/#Confusable_Detection
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

from .protocol import MAX_ROOM_NAME, MAX_ROOM_NAME_BYTES, MAX_USERNAME, MAX_USERNAME_BYTES, ErrorCode, ProtocolError

__all__ = [
    "CONFUSABLES_VERSION", "INVISIBLE", "MAX_ROOM_BYTES", "MAX_ROOM_CHARS", "MAX_USERNAME_BYTES",
    "MAX_USERNAME_CHARS", "clash_keys", "clashes", "normalize_name", "skeleton",
]

# The limits are the wire's (TCRP.md §3), defined with the codec.
MAX_ROOM_CHARS, MAX_ROOM_BYTES = MAX_ROOM_NAME, MAX_ROOM_NAME_BYTES
MAX_USERNAME_CHARS = MAX_USERNAME
CONFUSABLES_VERSION = "17.0.0"  #: the UTS #39 data in confusables.txt

_KINDS = {"room": ("room name", MAX_ROOM_CHARS, MAX_ROOM_BYTES),
          "username": ("username", MAX_USERNAME_CHARS, MAX_USERNAME_BYTES)}
# NFKC shrinks a name at most about 4:1 (Ω + 3 marks -> ᾯ); the cap comes first because NFC
# reorders a run of combining marks in quadratic time (40 000 marks take 2 s).
_MAX_INPUT_RATIO = 4

#: Assigned characters outside Cc/Cf that show as nothing or as blank space.
INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0\U0001d159")

_REFUSED = {  # general category -> what the character is and what to do (§3)
    "Cc": "a control character: remove it",
    "Cf": "an invisible format character: remove it",
    "Cs": "half of a surrogate pair, not a character (a lone \\ud800-style JSON escape?): "
          "send the whole character",
    "Co": "a private-use character, which each device draws differently: remove it",
    "Cn": f"unassigned in Unicode {unicodedata.unidata_version}, the version this server knows: remove it",
    "Zl": "a line separator: a name is one line",
    "Zp": "a paragraph separator: a name is one line",
}
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ZWNJ, _ZWJ, _VS16 = "\u200c", "\u200d", "\ufe0f"
_VIRAMA = 9  # canonical combining class of a virama (RFC 5892 Appendix A.1, A.2)
_MAX_MARKS = 4  # nonspacing marks in a row (UTS #39 §5.4)

# Default_Ignorable_Code_Point, DerivedCoreProperties.txt 17.0.0: the skeleton drops these (UTS #39 §4).
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)


def normalize_name(value: object, kind: str) -> str:
    """Return the NFKC form of a username (``kind="username"``) or room name (``kind="room"``).

    Raises ProtocolError(INVALID_NAME) with a reason a person can act on (which character, where,
    and what to do) when the name breaks a rule of the module docstring.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'room' or 'username', not {kind!r}")
    label, max_chars, max_bytes = _KINDS[kind]
    if not isinstance(value, str):
        raise _invalid(f"the {label} must be text (a JSON string), not {type(value).__name__}")
    if not value:
        raise _invalid(f"the {label} is empty: choose a name of 1 to {max_chars} characters")
    if len(value) > _MAX_INPUT_RATIO * max_chars:
        raise _invalid(f"the {label} is {len(value)} characters long; the limit is {max_chars}: "
                       "choose a shorter name")
    _check_characters(value, label)  # as typed, so that the position and the character are the sender's
    name = unicodedata.normalize("NFKC", value)
    if name != value:
        _check_characters(name, label)  # NFKC can change what surrounds a joiner (™ -> TM)
    _check_layout(name, label)
    if len(name) > max_chars:
        raise _invalid(f"the {label} is {len(name)} characters long once normalised (NFKC); the limit is "
                       f"{max_chars}: choose a shorter name")
    size = len(name.encode("utf-8"))
    if size > max_bytes:
        raise _invalid(f"the {label} takes {size} bytes in UTF-8; the limit is {max_bytes} bytes "
                       f"({max_bytes // 3} Japanese characters, {max_bytes // 4} emoji): choose a shorter name")
    return name


def skeleton(name: str) -> str:
    """The UTS #39 §4 confusable skeleton: NFD, drop default ignorables, map to prototypes, NFD.

    Two strings with equal skeletons look alike (``skeleton("аlice") == skeleton("aIice") ==
    "alice"``). A skeleton is for comparing, never for showing. It is case sensitive, as the
    standard's; :func:`clash_keys` adds case. The steps are repeated until the result stops
    changing: 13 prototypes of the data hold a character that has a prototype of its own once
    decomposed (U+048B ҋ -> й + U+0326, and й is и + U+0306), so one pass would not see that ҋ and
    its prototype look alike. Equal UTS #39 skeletons still give equal results. Call it on names
    :func:`normalize_name` accepted: NFD of an unbounded run of combining marks is slow.
    """
    table = _prototypes()
    result = unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).translate(table))
    while (again := unicodedata.normalize("NFD", result.translate(table))) != result:
        result = again
    return result


def clash_keys(name: str) -> frozenset[tuple[str, str]]:
    """The keys a room holds for ``name``: two names clash when they share one.

    ``("look", skeleton)`` catches look-alikes, ``("case", skeleton of the case fold)`` names that
    differ only in case. A registry keeps a ``dict`` from each key to the name that holds it.
    """
    name = unicodedata.normalize("NFKC", name)
    return frozenset({("look", skeleton(name)),
                      ("case", skeleton(unicodedata.normalize("NFKC", name.casefold())))})


def clashes(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` look alike or differ only in case (symmetric and reflexive)."""
    return not clash_keys(a).isdisjoint(clash_keys(b))


# --- helpers -----------------------------------------------------------------------------------

def _invalid(reason: str) -> ProtocolError:
    return ProtocolError(reason, ErrorCode.INVALID_NAME)


def _describe(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: the code point and its Unicode name (or its category's label)."""
    fallback = {"Cc": "<control>", "Cs": "<surrogate>", "Co": "<private use>"}.get(unicodedata.category(ch),
                                                                                 "<unassigned>")
    return f"U+{ord(ch):04X} {unicodedata.name(ch, fallback)}"


def _check_characters(name: str, label: str) -> None:
    for position, ch in enumerate(name):
        problem = _character_problem(name, position)
        if problem:
            raise _invalid(f"the {label} has {_describe(ch)} as character {position + 1}, {problem}")


def _character_problem(name: str, i: int) -> str:
    """Why ``name[i]`` may not stand there, or "" when it may (rule 3 of the module docstring)."""
    ch = name[i]
    category = unicodedata.category(ch)
    if ch in (_ZWJ, _ZWNJ):
        if (i and unicodedata.combining(name[i - 1]) == _VIRAMA) or (ch == _ZWJ and _joins_emoji(name, i)):
            return ""
        return ("a zero width joiner, accepted only between two emoji (as in 👩‍💻) or after a virama: remove it"
                if ch == _ZWJ else "a zero width non-joiner, accepted only after a virama: remove it")
    if ch in _BIDI:
        return "a bidirectional control, which changes the order in which text is shown: remove it"
    if ch in INVISIBLE:
        return "a character that shows as blank or not at all: remove it"
    return _REFUSED.get(category, "")


def _joins_emoji(name: str, i: int) -> bool:
    """Whether the ZWJ at ``name[i]`` joins two emoji: a symbol (So), maybe with VS16 or a skin tone, then a symbol."""
    before = name[:i].rstrip(_VS16)
    if before and "\U0001f3fb" <= before[-1] <= "\U0001f3ff":  # emoji modifiers (skin tones)
        before = before[:-1]
    after = name[i + 1:i + 2]
    return bool(before and after) and unicodedata.category(before[-1]) == "So" == unicodedata.category(after)


def _check_layout(name: str, label: str) -> None:
    """Rules 4 and 5: spaces and combining marks."""
    other_space = next((i for i, ch in enumerate(name) if ch.isspace() and ch != " "), None)
    if other_space is not None:  # U+1680: NFKC turns every other space character into U+0020
        raise _invalid(f"the {label} has {_describe(name[other_space])} as character {other_space + 1}, "
                       "a space other than the ordinary one: use U+0020 SPACE")
    if name[0] == " " or name[-1] == " ":
        raise _invalid(f"the {label} {'starts' if name[0] == ' ' else 'ends'} with a space: remove it")
    if "  " in name:
        raise _invalid(f"the {label} has two spaces in a row after character {name.index('  ')}: "
                       "use one space between words")
    if unicodedata.category(name[0]).startswith("M"):
        raise _invalid(f"the {label} starts with {_describe(name[0])}, a combining mark that would sit on "
                       "whatever is shown before the name: start with a letter, digit or symbol")
    run, previous = 0, ""
    for ch in unicodedata.normalize("NFD", name):
        run = run + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        if run > 1 and ch == previous:
            raise _invalid(f"the {label} has {_describe(ch)} twice in a row, which looks like once: remove one")
        if run > _MAX_MARKS:
            raise _invalid(f"the {label} stacks more than {_MAX_MARKS} combining marks on one character, which "
                           "draws over the text around it: use fewer")
        previous = ch


@functools.cache
def _prototypes() -> dict[int, str]:
    """``str.translate`` table: each confusable to its prototype, each default ignorable to ""."""
    table: dict[int, str] = {cp: "" for first, last in _DEFAULT_IGNORABLE for cp in range(first, last + 1)}
    text = resources.files(__package__).joinpath("confusables.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            source, prototype = line.split(";")
            table.setdefault(int(source, 16), "".join(chr(int(cp, 16)) for cp in prototype.split()))
    return table

"""The word-splitting rules of spaCy's English tokenizer, as data our splitter can use without spaCy.

spaCy splits a whitespace-delimited chunk by peeling off prefixes and suffixes (punctuation,
quotes, currency signs, symbols, clitics such as "'s"), then splitting the rest at infixes
(hyphens between letters, "=", "/", ":" between a letter and a letter, ...). Special cases
(contractions, abbreviations, emoticons) override the rules. The classes and lists below
describe that behaviour; `fast_tokenizer` applies them.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

_PUNCT = "… …… , : ; ! ? ¿ ؟ ¡ ( ) [ ] { } < > _ # * & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪".split()
_QUOTES = "' \" ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉 ⟦ ⟧".split()
_HYPHENS = ["-", "–", "—", "--", "---", "——", "~"]
_CURRENCY = "$ £ € ¥ ฿ US$ C$ A$ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₾ ₿".split()
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh "
    "mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм "
    "кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тбسم كم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم "
    "غرام جرام جم كغ ملغ كوب اكواب"
).split()
# Letters in the scripts spaCy lists: Python's letter class is close; case needs explicit ranges.
_LOWER = "a-zß-öø-ÿāăąćĉċčďđēĕėęěĝğġģĥħĩīĭįıĳĵķĸĺļľŀłńņňŉŋōŏőœŕŗřśŝşšţťŧũūŭůűųŵŷźżžſα-ωάέίόώήύа-яёѐ-џ"
_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĲĴĶĹĻĽĿŁŃŅŇŊŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽΑ-ΩΆΈΊΌΏΉΎА-ЯЁЀ-Џ"
_ALPHA = r"[^\W\d_]"  # any letter
_ALNUM = r"[^\W_]"  # any letter or digit
SENTENCE_END = frozenset("!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？｡。")


def _alt(items) -> str:
    return "|".join(re.escape(i) for i in sorted(items, key=len, reverse=True))


def _chars(items) -> str:
    """One character class for the one-character items (much faster than an alternation)."""
    return "".join(re.escape(i) for i in items if len(i) == 1)


@cache
def _symbols(non_ascii: bool = True) -> str:
    """Other symbols (Unicode category So) but the degree sign, spaCy's "icons", as ranges for a
    character class. ASCII has none: pure-ASCII chunks use patterns without this (slow) class."""
    if not non_ascii:
        return ""
    codes = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "So" and c != 0xB0]
    ranges, start = [], codes[0]
    for prev, code in zip(codes, codes[1:] + [-1]):
        if code != prev + 1:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = code
    return "".join(ranges)


@cache
def prefix_regex(non_ascii: bool = True) -> re.Pattern:
    """The first prefix in spaCy's order wins; its multi-character entries either never win over
    a one-character one ("……" after "…") or share no first character with one ("US$")."""
    singles = _chars(["§", "%", "=", "—", "–", *_PUNCT, "…", *_QUOTES, *_CURRENCY]) + _symbols(non_ascii)
    multi = _alt([c for c in _CURRENCY if len(c) > 1])
    return re.compile(rf"[{singles}]|\+(?![0-9])|\.\.+|{multi}")


@cache
def suffix_regex(non_ascii: bool = True) -> re.Pattern:
    """Suffixes, each to be matched up to the end; `suffix_length` tries a few start positions,
    since a search from the left would try every position of the chunk."""
    punct, quotes = _chars(_PUNCT), _chars(_QUOTES)
    singles = _chars([*_PUNCT, "…", *_QUOTES, "—", "–"]) + _symbols(non_ascii)
    pieces = [
        f"[{singles}]",
        _alt([p for p in _PUNCT if len(p) > 1]),
        r"\.\.+",
        _alt(["'s", "'S", "’s", "’S"]),
        r"(?<=[0-9])\+",
        r"(?<=°[FfCcKk])\.",
        rf"(?<=[0-9])(?:{_alt(_CURRENCY)})",
        rf"(?<=[0-9])(?:{_alt(_UNITS)})",
        rf"(?<=[0-9{_LOWER}%²\-\+{punct}{quotes}])\.",
        rf"(?<=[{_UPPER}][{_UPPER}])\.",
    ]
    return re.compile("|".join(f"(?:{p})$" for p in pieces))


@cache
def infix_regex(non_ascii: bool = True) -> re.Pattern:
    quotes = _chars(_QUOTES)
    pieces = [
        r"\.\.+",
        f"[…{_symbols(non_ascii)}]",
        r"(?<=[0-9])[+\-\*^](?=[0-9-])",
        rf"(?<=[{_LOWER}{quotes}])\.(?=[{_UPPER}{quotes}])",
        rf"(?<={_ALPHA}),(?={_ALPHA})",
        rf"(?<={_ALNUM})(?:{_alt(_HYPHENS)})(?={_ALPHA})",
        rf"(?<={_ALNUM})[:<>=/](?={_ALPHA})",
    ]
    return re.compile("|".join(pieces))


_LONGEST_FIXED_SUFFIX = max(len(x) for x in _PUNCT + _QUOTES + _CURRENCY + _UNITS) + 1


def suffix_length(chunk: str, at=None) -> int:
    """Length of the suffix a left-to-right search would find: the longest one (the leftmost
    start wins), including a run of dots of any length."""
    at = at or suffix_regex().match
    n = len(chunk)
    dots = n - len(chunk.rstrip("."))
    starts = range(max(0, n - _LONGEST_FIXED_SUFFIX), n)
    if dots >= 2 and n - dots < starts.start:
        starts = [n - dots, *starts]
    for start in starts:
        if at(chunk, start):
            return n - start
    return 0


# Web addresses stay whole: an optional scheme and user, host labels ending in a lowercase
# top-level domain ("pickle.Pickler.dump" counts, "io.TextIOWrapper" does not) or an IP address,
# then an optional port and path. Case-sensitive, as spaCy's.
_LABEL = "[A-Za-z0-9\u00a1-\uffff]"
URL = re.compile(
    rf"^(?:[\w+\-.]{{2,}}://)?(?:\S+(?::\S*)?@)?"
    rf"(?:(?:\d{{1,3}}\.){{3}}\d{{1,3}}|(?:(?:{_LABEL}[A-Za-z0-9\u00a1-\uffff_-]{{0,62}})?{_LABEL}\.)+"
    rf"[{_LOWER}]{{2,63}})(?::\d{{2,5}})?(?:[/?#]\S*)?$"
)


def _cased(word: str) -> set[str]:
    return {word, word[:1].upper() + word[1:]}


def _contractions() -> dict[str, list[str]]:
    """Pronoun + auxiliary and verb + not contractions, with ', ’ or no apostrophe."""
    out: dict[str, list[str]] = {}
    clitics = {
        "i": ["m", "d", "ll", "ve"],
        "you": ["d", "ll", "re", "ve"],
        "he": ["d", "ll", "s"],
        "she": ["d", "ll", "s"],
        "it": ["d", "ll", "s"],
        "we": ["d", "ll", "re", "ve"],
        "they": ["d", "ll", "re", "ve"],
    }
    for w in ("that", "this", "these", "those", "there", "what", "when", "where", "who", "why", "how"):
        clitics[w] = ["d", "ll", "re", "s", "ve"]
    negated = {
        "ai": "ai",
        "are": "are",
        "ca": "ca",
        "could": "could",
        "dare": "dare",
        "did": "did",
        "does": "does",
        "do": "do",
        "had": "had",
        "has": "has",
        "have": "have",
        "is": "is",
        "may": "may",
        "might": "might",
        "must": "must",
        "need": "need",
        "ought": "ought",
        "sha": "sha",
        "should": "should",
        "was": "was",
        "were": "were",
        "wo": "wo",
        "would": "would",
    }
    # the apostrophe-less forms that are also plain words stay whole
    plain_words = {
        "ill",
        "well",
        "hell",
        "shell",
        "its",
        "were",
        "whore",
        "wholl",
        "id",
        "hed",
        "shed",
        "wed",
        "whos",
    }
    for apostrophe in ("'", "’", ""):
        for base, tails in clitics.items():
            for tail in tails:
                parts = [[base, apostrophe + tail]]
                if tail in ("d", "ll"):
                    parts.append([base, apostrophe + tail, apostrophe + "ve"])
                for p in parts:
                    _add_cased(out, p, apostrophe, plain_words)
        for base in negated.values():
            for extra in ([], [apostrophe + "ve"]):
                if base in ("has", "have", "is", "are", "was", "were", "ai", "dare") and extra:
                    continue
                _add_cased(out, [base, "n" + apostrophe + "t", *extra], apostrophe, plain_words)
        for base in ("could", "might", "must", "should", "would", "not"):
            _add_cased(out, [base, apostrophe + "ve"], apostrophe, plain_words)
    for key in ("id", "hed", "wed", "whos"):  # apostrophe-less forms spaCy still splits
        base, tail = {"id": ("i", "d"), "hed": ("he", "d"), "wed": ("we", "d"), "whos": ("who", "s")}[key]
        for cased in _cased(key):
            out[cased] = [base if cased == key else base.capitalize(), tail]
    return out


def _add_cased(out: dict, parts: list[str], apostrophe: str, plain_words: set[str]) -> None:
    key = "".join(parts)
    if not apostrophe and key in plain_words:
        return
    out[key] = list(parts)
    out[key[:1].upper() + key[1:]] = [parts[0][:1].upper() + parts[0][1:], *parts[1:]]


_ABBREVIATIONS = (
    "Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. Mr. Mrs. Ms. Dr. Prof. St. Jr. Gen. Gov. Rep. "
    "Sen. Rev. Adm. Co. Corp. Inc. Ltd. Bros. Messrs. Mt. Ph.D. D.C. N.C. N.D. N.H. N.J. N.M. N.Y. S.C. Ala. Ariz. "
    "Ark. Calif. Colo. Conn. Del. Fla. Ga. Ia. Id. Ill. Ind. Kan. Kans. Ky. La. Mass. Md. Mich. Minn. Miss. Mo. "
    "Mont. Neb. Nebr. Nev. Okla. Ore. Pa. Tenn. Va. Wash. Wis. Ak. e.g. E.g. E.G. i.e. I.e. I.E. a.m. p.m. vs. v.s. "
    "co. and/or w/o C++ 'em 'bout 'cause 'cos 'coz 'cuz 'nuff 'Cause 'Cos 'Coz 'Cuz ' '' 'd 'll 're 's 'S 've 'm "
    "’s ’S ‘s ‘S em ll ol Ol nuff doin goin havin lovin nothin nuthin somethin Doin Goin Havin Lovin Nothin "
    "Nuthin Somethin — ä. ö. ü."
).split()
_EMOTICONS = (
    r""":) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; (-;
    :( :-( :(( :-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :’) :’-) :’( :’-( :/ :-/ =/ :| =| :-| ]= =[ :1
    :P :-P :p :-p :O :-O :o :-o :0 :-0 :() >:o :* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D xD XD xDD
    XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_; -_- -__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0 o.o O.O 0.o
    o.0 O.o o.O 0.0 @_@ <3 <33 <333 </3 (^_^) (-_-) (._.) (>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ ¯\(ツ)/¯ (╯°□°）╯︵┻━┻
    ><(((*> \") \n \t"""
).split()


@cache
def special_cases() -> dict[str, list[str]]:
    out = _contractions()
    for word in _ABBREVIATIONS + _EMOTICONS:
        out[word] = [word]
    for letter in "abcdefghijklmnopqrstuvwxyz":
        out[letter + "."] = [letter + "."]
    for hour in range(1, 13):
        for tail in ("am", "pm", "a.m.", "p.m."):
            out[f"{hour}{tail}"] = [str(hour), tail]
    for unit in "CFKcfk":
        out[f"°{unit}."] = ["°", unit, "."]
    for cased in _cased("gonna"):
        out[cased] = [cased[:3], "na"]
    for cased in _cased("gotta"):
        out[cased] = [cased[:3], "ta"]
    for cased in _cased("cannot"):
        out[cased] = [cased[:3], "not"]
    for cased in _cased("ima"):
        out[cased] = [cased[:1], "m", "a"]
    out["yall"], out["y'all"], out["y’all"] = ["y", "all"], ["y'", "all"], ["y’", "all"]
    for key, parts in (("c'mon", ["c'm", "on"]), ("c’mon", ["c’m", "on"])):
        out[key], out[key.capitalize()] = parts, [parts[0].capitalize(), parts[1]]
    return out

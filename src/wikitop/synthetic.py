"""Seeded generator of realistic hourly pageview dump files, for tests and benchmarks.

The output imitates a real ``pageviews-YYYYMMDD-HH0000.gz`` (see shared/DATA.md):
``domain_code page_title count_views 0`` lines sorted by domain code then title
(UTF-8 byte order), each pair once, about 1,800 domain codes with a heavy-tailed
share of lines, decoded titles in many scripts with awkward characters, 60% of
counts equal to 1, and optionally bad lines, Spark-era quoting and pairs taken
from the blacklist. The same arguments always give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import math
import random
import re
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FULL_HOUR_LINES = 6_000_000
FULL_HOUR_DOMAINS = 1_800
MIN_DOMAINS = 40
MIN_LINES = 100  # room for up to 60 bad lines and a few good ones

# Pareto shape giving P(count == 1) = 1 - 2**-shape = 0.6, as in real hours.
COUNT_SHAPE = 1.32
COUNT_BITS = 29
WRITE_CHUNK_BYTES = 8_000_000

# Wikipedia language codes, roughly by traffic; the rank sets a code's share of lines.
LANGUAGES = """
en ja de es ru fr it zh pt pl fa nl ar tr id sv uk ko vi he cs fi hu th no ro el hi bn ca
da sr ms bg simple az kk hr sk lt et sl uz eo ur lv eu ta gl ml hy te mr ka be mk sq is af
zh-yue la tl bs kn cy nn sh my ne si ast ky tg war ceb an zh-min-nan be-tarask jv sw pa ga
mn gu ckb arz tt ba azb ps br lb fy oc lmo als vec ku su scn nds ce bar mzn io yo sco pnb
hsb qu ia ht am or sa lij mg fo pms wa bpy gd min new sah zh-classical nap os hif bcl vo
ilo cv bat-smg li mai km rue xmf gan so pam map-bms mhr nds-nl roa-tara eml se fiu-vro gor
diq wuu tk ace lfn hak frr ab sd ang mi dsb nah vls pag stq lad sc kab kw gn co ha rm mrj
dty frp csb tet udm ln gv ext olo kv pcd ie ig lo xal ay krc ksh myv haw as nv bo pi za
gag pdc kaa vep tyv inh dv zea pap nso bxr kbd jbo av arc koi lez rw kl bh tpi ug mwl
cbk-zam to lbe chr szl got tw bi pfl st ny jam rmy ff sm nrm ki bjn atj ltg srn tum cu ts
ch om xh ss ee pih ve ti ak bug sn zu ks tn cdo iu chy sg fj ady ik dz rn cr lg bm pnt ty
din na mad ban nia shn gcr nqo mni kg tay trv smn alt awa skr ary guw pwn pcm fat ami szy
mnw blk shi kcg bbc gpe gur guc tly ann nr kus fon tdd dga bew btm iba kge nup tcy roa-rup
glk lrc mdf aa cho ho hz ii kj kr mh mus ng
""".split()

# Sister projects: suffix, number of top languages that have one, share of lines
# relative to that language's Wikipedia (desktop, mobile).
SISTER_PROJECTS = (
    ("d", 230, 0.05, 0.05),  # Wiktionary
    ("s", 80, 0.03, 0.02),  # Wikisource
    ("q", 100, 0.015, 0.015),  # Wikiquote
    ("b", 100, 0.02, 0.01),  # Wikibooks
    ("voy", 25, 0.006, 0.006),  # Wikivoyage
    ("n", 32, 0.005, 0.005),  # Wikinews
    ("v", 17, 0.004, 0.002),  # Wikiversity
)
# Codes outside the language grid (Commons, Wikidata, MediaWiki, chapters...), with their
# share of lines relative to the English Wikipedia.
OTHER_CODES = {
    "commons.m": 0.04,
    "commons.m.m": 0.01,
    "www.wd": 0.02,
    "m.wd": 0.002,
    "www.w": 0.004,
    "m.w": 0.0005,
    "meta.m": 0.003,
    "meta.m.m": 0.001,
    "species.m": 0.001,
    "species.m.m": 0.0005,
    "incubator.m": 0.0004,
    "incubator.m.m": 0.0001,
    "outreach.m": 0.0002,
    "wikimania.m": 0.0001,
    "foundation.m": 0.0002,
    "advisory.m": 0.00002,
    "login.m": 0.0001,
    "ar.m.m": 0.00005,
    "de.m.m": 0.00005,
    "uk.m.m": 0.00005,
    "strategy.m": 0.00002,
}
# Always present, even in small files, so every kind of code is exercised.
SHOWCASE_CODES = (
    "en", "en.m", "de", "de.m", "ja", "ja.m", "ar", "ar.m", "zh", "zh.m", "ru.m", "fr.m",
    "en.d", "en.m.d", "en.b", "en.q", "en.s", "en.v", "en.voy", "en.m.voy", "en.n",
    "commons.m", "commons.m.m", "www.wd", "m.wd", "www.w", "meta.m", "zh-yue", "be-tarask",
)  # fmt: skip


def _chars(first: int, last: int) -> str:
    return "".join(chr(code) for code in range(first, last + 1))


# Latin words are built from syllables; a few vowels are accented or from other alphabets.
LATIN_ONSETS = "b c d f g h j k l m n p r s t v w z b d k l m n r s t br ch st tr th sh kr pl gr".split()
LATIN_VOWELS = list("aeiou" * 8 + "yaeio") + "ou ea ie á é í ó ú ä ö ü ñ à è ê ç ø å ł ş ă".split()
LATIN_CODAS = "n r s l t m k nd st rg".split()
WORD_FREQUENCY_EXPONENT = 1.2
# Alphabets of the other scripts (Latin words are built from syllables, see above).
SCRIPTS = {
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя" * 3 + "іїєґўқңүһөә",
    "arabic": "ابتثجحخدذرسشصضطظعغفقكلمنهوي" * 2 + "پچژگکیةءآأإؤئ",
    "han": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
    "对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三"
    "已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机",
    "japanese": _chars(0x3041, 0x3093) + _chars(0x30A1, 0x30F3) + "日本東京大学駅線町市県山川田中",
    "hangul": _chars(0xAC00, 0xAD00) + _chars(0xB098, 0xB204) + _chars(0xC0AC, 0xC2A4),
    "hebrew": _chars(0x05D0, 0x05EA),
    "devanagari": _chars(0x0915, 0x0939) + "ािीुूेैोौं",
    "bengali": _chars(0x0995, 0x09A8) + _chars(0x09AA, 0x09B0) + "ািীুূে",
    "greek": _chars(0x03B1, 0x03C9) + "άέήίόύώ",
    "georgian": _chars(0x10D0, 0x10F0),
    "armenian": _chars(0x0561, 0x0586),
    "thai": _chars(0x0E01, 0x0E2E) + "ะาำิีึืุู",
    "tamil": "கஙசஞடணதநனபமயரறலளழவஷஸஹ" + "ாிீுூெேைொோ",
    "ethiopic": _chars(0x1200, 0x1248),
}
LANGUAGE_SCRIPTS = {
    "cyrillic": "ru uk bg sr be be-tarask kk ky tg mk mn tt ba ce cv os sah mhr mrj udm kv koi myv "
    "krc xal tyv bxr kbd av lez lbe inh rue ab ady alt mdf",
    "arabic": "ar fa ur arz azb ps ckb mzn pnb sd ug ks ary glk lrc",
    "han": "zh zh-yue zh-classical wuu gan hak cdo",
    "japanese": "ja",
    "hangul": "ko",
    "hebrew": "he yi",
    "devanagari": "hi mr ne sa new bh mai awa dty",
    "bengali": "bn as bpy mni",
    "greek": "el pnt",
    "georgian": "ka xmf",
    "armenian": "hy",
    "thai": "th",
    "tamil": "ta",
    "ethiopic": "am ti",
}
SCRIPT_OF_LANGUAGE = {lang: script for script, langs in LANGUAGE_SCRIPTS.items() for lang in langs.split()}
# Characters per word, by script: scripts with wide characters get shorter words.
WORD_LENGTHS = {"han": (1, 4), "japanese": (2, 6), "hangul": (1, 4), "thai": (3, 9)}
DEFAULT_WORD_LENGTH = (3, 10)
# Vocabulary sizes are powers of two (at most 2**15) so that word indices can be cut
# from 15-bit slices of random bits.
VOCABULARY_BITS = {"latin": 15}
DEFAULT_VOCABULARY_BITS = 13
# Words per title, indexed by 4 random bits.
WORD_COUNTS = (1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 5, 5)
# Out of 128: titles in the language's own script; the rest use Latin words.
OWN_SCRIPT_SHARE = 109


def _utf8(*texts: str) -> tuple[bytes, ...]:
    return tuple(text.encode("utf-8") for text in texts)


MAIN_PAGES = {
    "en": "Main_Page",
    "de": "Wikipedia:Hauptseite",
    "fr": "Wikipédia:Accueil_principal",
    "es": "Wikipedia:Portada",
    "it": "Pagina_principale",
    "ja": "メインページ",
    "ru": "Заглавная_страница",
    "zh": "Wikipedia:首页",
    "ar": "الصفحة_الرئيسية",
    "pt": "Wikipédia:Página_principal",
    "pl": "Wikipedia:Strona_główna",
    "nl": "Hoofdpagina",
    "fa": "صفحهٔ_اصلی",
    "uk": "Головна_сторінка",
    "he": "עמוד_ראשי",
    "ko": "위키백과:대문",
}
NAMESPACES = _utf8(
    "Special:", "File:", "User:", "Talk:", "Category:", "Template:", "Wikipedia:",
    "User_talk:", "Portal:", "Help:", "Spezial:", "Datei:", "Benutzer:", "Служебная:",
    "Файл:", "特別:", "ファイル:", "خاص:", "ملف:", "Kategorie:", "Catégorie:",
)  # fmt: skip
FILE_NAMESPACES = frozenset(_utf8("File:", "Datei:", "Файл:", "ファイル:", "ملف:"))
SPECIAL_PAGES = _utf8(
    "Special:Search", "Special:Random", "Special:RecentChanges", "Special:Log/block",
    "Special:ListUsers", "Special:Watchlist", "Special:Contributions", "Special:MobileLanguages",
)  # fmt: skip
FILE_EXTENSIONS = _utf8(".jpg", ".svg", ".png", ".JPG", ".ogg", ".pdf", ".gif")
DISAMBIGUATORS = _utf8("_(film)", "_(album)", "_(band)", "_(disambiguation)", "_(song)", "_(1999)", "_(TV_series)")
# Non-ASCII spaces, and characters whose order differs between UTF-16 and UTF-8.
ODD_CHARACTERS = _utf8("\u00a0", "\u3000", "\u2009", "\ufeff", "😀", "🎉", "🇫🇷", "（株）", "ｶﾀｶﾅ", "𝔘𝔫𝔦")

BAD_LINE_KINDS = (
    "wrong_field_count",
    "invalid_count",
    "negative_count",
    "empty_line",
    "empty_domain_code",
    "invalid_utf8",
)
# A Latin-1 é, two bytes that never occur in UTF-8, a truncated two-byte sequence.
INVALID_UTF8_TAILS = (b"\xe9", b"\xff\xfe", b"\xc3")
INVALID_COUNTS = (b"abc", b"1.5", b"12x", b"", b"99999999999999999999")


class _CountFields(dict):
    """The field text after a title, " 7 0\n", made once per distinct count."""

    def __missing__(self, count: int) -> bytes:
        field = self[count] = b" %d 0\n" % count
        return field


COUNT_FIELDS = _CountFields()

_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _domain_weights() -> dict[str, float]:
    """Share of lines of every possible domain code (not normalised)."""
    weights: dict[str, float] = {}
    for rank, lang in enumerate(LANGUAGES):
        wikipedia = (2.5 if lang == "en" else 1.0) / (rank + 2) ** 1.5 * math.exp(-rank / 60)
        weights[lang] = 0.6 * wikipedia
        weights[lang + ".m"] = wikipedia
        for suffix, languages_with_project, desktop, mobile in SISTER_PROJECTS:
            if rank < languages_with_project:
                weights[f"{lang}.{suffix}"] = desktop * wikipedia
                weights[f"{lang}.m.{suffix}"] = mobile * wikipedia
    english = weights["en"] + weights["en.m"]
    for code, share in OTHER_CODES.items():
        weights[code] = share * english
    return weights


def domain_codes(lines: int = FULL_HOUR_LINES) -> dict[str, float]:
    """The domain codes of a file of about ``lines`` lines, with their share of lines.

    About 1,800 codes for a full hour, fewer (but at least MIN_DOMAINS) for small files.
    """
    weights = _domain_weights()
    wanted = round(FULL_HOUR_DOMAINS * min(1.0, lines / FULL_HOUR_LINES) ** 0.5)
    wanted = max(MIN_DOMAINS, min(wanted, len(weights)))
    wanted = max(1, min(wanted, lines // 10))  # tiny files: keep room for several lines per code
    chosen = list(SHOWCASE_CODES[:wanted])
    for code in sorted(weights, key=lambda code: (-weights[code], code)):
        if len(chosen) >= wanted:
            break
        if code not in chosen:
            chosen.append(code)
    total = sum(weights[code] for code in chosen)
    return {code: weights[code] / total for code in chosen}


def _allocate_lines(shares: dict[str, float], good_lines: int) -> dict[str, int]:
    """Lines per domain code, at least one each, summing to ``good_lines``."""
    counts = {code: max(1, int(share * good_lines)) for code, share in shares.items()}
    biggest = max(counts, key=counts.get)
    counts[biggest] += good_lines - sum(counts.values())
    if counts[biggest] < 1:
        raise ValueError(f"{good_lines} lines are too few for {len(shares)} domain codes")
    return counts


def _latin_word(rng: random.Random) -> str:
    syllables = rng.choices((1, 2, 3, 4), weights=(2, 5, 4, 1))[0]
    return "".join(
        rng.choice(LATIN_ONSETS) + rng.choice(LATIN_VOWELS) + (rng.choice(LATIN_CODAS) if rng.random() < 0.3 else "")
        for _ in range(syllables)
    )


def _vocabulary(rng: random.Random, script: str) -> list[bytes]:
    """A table of words in which common words fill many slots (Zipf-like), as in real titles.

    Skewed word and letter frequencies also make the file compress about as well as a
    real one.
    """
    size = 1 << VOCABULARY_BITS.get(script, DEFAULT_VOCABULARY_BITS)
    if script == "latin":
        distinct = [_latin_word(rng) for _ in range(size // 4)]
    else:
        letters = list(SCRIPTS[script])
        rng.shuffle(letters)  # so that the frequent letters are not those first in code point order
        letter_weights = [1.0 / (rank + 3) for rank in range(len(letters))]
        shortest, longest = WORD_LENGTHS.get(script, DEFAULT_WORD_LENGTH)
        distinct = [
            "".join(rng.choices(letters, weights=letter_weights, k=rng.randint(shortest, longest)))
            for _ in range(size // 4)
        ]
    distinct = [word.capitalize() if rng.random() < 0.5 else word for word in distinct]
    word_weights = [1.0 / (rank + 3) ** WORD_FREQUENCY_EXPONENT for rank in range(len(distinct))]
    table = distinct + rng.choices(distinct, weights=word_weights, k=size - len(distinct))
    return [word.encode("utf-8") for word in table]


def dump_title(blacklist_title: str) -> str | None:
    """A blacklist title as a dump writes it: fully percent-decoded, spaces as ``_``.

    None when a decoding step gives invalid UTF-8, or the result is empty or holds
    control characters: no dump line could match such an entry.
    """
    title = blacklist_title.replace(" ", "_")
    while "%" in title:
        raw = _PERCENT_ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), title.encode("utf-8"))
        try:
            decoded = raw.decode("utf-8").replace(" ", "_")
        except UnicodeDecodeError:
            return None
        if decoded == title:
            break
        title = decoded
    if not title or _CONTROL_CHARACTER.search(title):
        return None
    return title


def _spelling(blacklist_title: str) -> str:
    if re.search("%25[0-9A-Fa-f]{2}", blacklist_title):
        return "double"
    if re.search("%[0-9A-Fa-f]{2}", blacklist_title):
        return "encoded"
    return "plain"


def _choose_blacklisted(
    rng: random.Random, path, lines_per_domain: dict[str, int], lines: int
) -> dict[str, dict[bytes, bool]]:
    """Blacklisted dump titles to include per domain code, each with whether it gets a top-25 count.

    Entries are drawn in turn from the list's three spellings (plain, percent-encoded,
    doubly encoded) so that every canonicalisation path is exercised. Only domains with
    at least 20 lines get some, at most a tenth of their lines.
    """
    by_spelling: dict[str, list[tuple[str, bytes]]] = {"plain": [], "encoded": [], "double": []}
    seen = set()
    for raw in Path(path).read_bytes().split(b"\n"):
        try:
            line = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            continue
        domain_code, _, title = line.partition(" ")
        if lines_per_domain.get(domain_code, 0) < 20 or not title or " " in title:
            continue
        decoded = dump_title(title)
        if decoded is not None and (domain_code, decoded) not in seen:
            seen.add((domain_code, decoded))
            by_spelling[_spelling(title)].append((domain_code, decoded.encode("utf-8")))

    wanted = min(300, max(10, lines // 2_000))
    queues = [rng.sample(pairs, len(pairs)) for pairs in by_spelling.values()]
    chosen: dict[str, dict[bytes, bool]] = {}
    picked = 0
    while picked < wanted and any(queues):
        for queue in queues:
            while queue and picked < wanted:
                domain_code, title = queue.pop()
                titles = chosen.setdefault(domain_code, {})
                if len(titles) < lines_per_domain[domain_code] // 10:
                    titles[title] = picked % 3 == 0
                    picked += 1
                    break
    return chosen


def _spark_quote(title: bytes) -> bytes:
    return b'"' + title.replace(b'"', b'\\"') + b'"'


def _decorate(rng: random.Random, title: bytes, word: bytes) -> bytes:
    """Give a title one of the characters that trip naive parsers, encoders or sorts."""
    kind = rng.randrange(16)
    if kind < 3:
        return b'%s_"%s"' % (word, title) if kind else b'%s_"%s"_%s' % (title, word, word)
    if kind == 3:
        return b'"%s"' % title  # pre-2023 spelling of titles such as "Heroes"
    if kind < 6:
        return b"%s,_%s" % (title, word)
    if kind < 8:
        return b"%s's_%s" % (word, title) if kind == 6 else b"%s_d'%s" % (title, word)
    if kind == 8:
        template = rng.choice((b"C:\\%s%s", b"%s\\%s", b'%s_"\\%s"'))
        return template % (title, word)
    if kind < 12:
        template = rng.choice(
            (
                b"100%%25_%s%s",  # % then hex digits: canonicalisation decodes it
                b"%s_50%%_%s",
                b"%%_%s%s",
                b"%s_(100%%)%s",
                b"%s%%E2%%82%%AC%s",
                b"%s_%%FF%s",  # would decode to invalid UTF-8, so it stays
                b"%s%%2520%s",
            )
        )
        return template % (title, word)
    odd = rng.choice(ODD_CHARACTERS)
    return title + odd + word if kind < 14 else odd + title


def _add_random_titles(
    rng: random.Random, views: dict[bytes, int], lines: int, own_words: list[bytes], latin_words: list[bytes]
) -> None:
    """Add random titles with random counts to ``views`` until it holds ``lines`` titles.

    This loop makes most of a full hour, so each title and its count are cut from one draw
    of 128 random bits: 7 pick the script, 4 the number of words, 5 x 15 the words, 8 the
    shape, 5 whether to decorate and the top 29 the count.
    """
    getrandbits = rng.getrandbits
    exponent = -1.0 / COUNT_SHAPE
    # Count = floor(u ** exponent) for u uniform in (0, 1): 1 whenever u > 2 ** -COUNT_SHAPE.
    count_scale = 1.0 / (1 << COUNT_BITS)
    always_one = int((1 << COUNT_BITS) * 2**-COUNT_SHAPE) + 1
    own_mask, latin_mask = len(own_words) - 1, len(latin_words) - 1
    while len(views) < lines:
        bits = getrandbits(128)
        words, mask = (own_words, own_mask) if bits & 127 < OWN_SCRIPT_SHARE else (latin_words, latin_mask)
        word_count = WORD_COUNTS[(bits >> 7) & 15]
        index = bits >> 11
        if word_count == 1:
            title = words[index & mask]
        elif word_count == 2:
            title = words[index & mask] + b"_" + words[(index >> 15) & mask]
        elif word_count == 3:
            title = b"_".join((words[index & mask], words[(index >> 15) & mask], words[(index >> 30) & mask]))
        elif word_count == 4:
            title = b"_".join(
                (
                    words[index & mask],
                    words[(index >> 15) & mask],
                    words[(index >> 30) & mask],
                    words[(index >> 45) & mask],
                )
            )
        else:
            title = b"_".join(
                (
                    words[index & mask],
                    words[(index >> 15) & mask],
                    words[(index >> 30) & mask],
                    words[(index >> 45) & mask],
                    words[(index >> 60) & mask],
                )
            )
        shape = (bits >> 86) & 255
        if shape < 33:
            if shape < 4:
                title = b"%d" % (index % 3000)
            elif shape < 30:
                namespace = NAMESPACES[index % len(NAMESPACES)]
                title = namespace + title
                if namespace in FILE_NAMESPACES:
                    title += FILE_EXTENSIONS[index % len(FILE_EXTENSIONS)]
            else:
                title = SPECIAL_PAGES[index % len(SPECIAL_PAGES)] + b"/" + title
        elif shape >= 249:
            title += DISAMBIGUATORS[index % len(DISAMBIGUATORS)]
        if (bits >> 94) & 31 == 0:
            title = _decorate(rng, title, latin_words[(index >> 60) & latin_mask])
        if title not in views:
            uniform = bits >> 99
            views[title] = 1 if uniform >= always_one else int(((uniform + 0.5) * count_scale) ** exponent)


def _domain_views(
    rng: random.Random,
    domain_code: str,
    lines: int,
    blacklisted: dict[bytes, bool],
    vocabularies: dict[str, list[bytes]],
) -> dict[bytes, int]:
    """Views per title for one domain code: exactly ``lines`` distinct titles."""
    language = domain_code.split(".")[0]
    random_ = rng.random
    views: dict[bytes, int] = {}

    # The pages that dominate real hours: the main page, the search page, unknown titles.
    # Their views grow slower than the number of lines (ar.m: 67k lines, main page 2.9k
    # views; af.m: 500 lines, 295 views), except for the English main pages.
    is_wikipedia = domain_code in (language, language + ".m")
    main_page = MAIN_PAGES.get(language, "Main_Page") if is_wikipedia else "Main_Page"
    scale = lines**0.75
    main_views = lines * 0.25 if domain_code in ("en", "en.m") else scale
    views[main_page.encode("utf-8")] = max(1, int(main_views * rng.uniform(0.5, 1.5)))
    if lines >= 10:
        views[b"Special:Search"] = max(1, int(scale * rng.uniform(0.15, 0.45)))
        if random_() < 0.6:
            views[b"-"] = max(1, int(scale * rng.uniform(0.1, 0.4)))
    for title in blacklisted:
        views.setdefault(title, int((1.0 - random_()) ** (-1.0 / COUNT_SHAPE)))

    own_script = SCRIPT_OF_LANGUAGE.get(language, "latin")
    _add_random_titles(rng, views, lines, vocabularies[own_script], vocabularies["latin"])

    if blacklisted:
        tenth = heapq.nlargest(10, views.values())[-1]
        for title, in_top in blacklisted.items():
            if in_top:
                views[title] = int(tenth * rng.uniform(1.0, 3.0)) + 1

    # Deliberate ties among the pages that will be ranked, so that the tie rules matter.
    if lines >= 60 and random_() < 0.4:
        threshold = heapq.nlargest(30 + len(blacklisted), views.values())[-1]
        candidates = [item for item in views.items() if item[1] >= threshold and item[0] not in blacklisted]
        ranked = sorted(candidates, key=lambda item: item[1], reverse=True)[:30]
        for title, _ in ranked[24:27]:
            views[title] = ranked[23][1]
        if random_() < 0.5:
            views[ranked[2][0]] = ranked[1][1]
    return views


def _bad_lines(rng: random.Random, codes: list[str], words: list[bytes]) -> dict[str, list[bytes]]:
    """A few lines of each bad kind (3 to 10), without their newline."""

    def pair() -> bytes:
        return b"%s %s_%s" % (rng.choice(codes).encode("ascii"), rng.choice(words), rng.choice(words))

    def small() -> int:
        return rng.randint(1, 9)

    makers = {
        "wrong_field_count": lambda: rng.choice(
            (b"%s %d" % (pair(), small()), b"%s %s %d 0" % (pair(), rng.choice(words), small()))
        ),
        "invalid_count": lambda: b"%s %s 0" % (pair(), rng.choice(INVALID_COUNTS)),
        "negative_count": lambda: b"%s -%d 0" % (pair(), rng.randint(1, 50)),
        "empty_line": lambda: b"",
        "empty_domain_code": lambda: b" %s:%s %d 0" % (rng.choice(words), rng.choice(words), small()),
        "invalid_utf8": lambda: b"%s%s %d 0" % (pair(), rng.choice(INVALID_UTF8_TAILS), small()),
    }
    return {kind: [makers[kind]() for _ in range(rng.randint(3, 10))] for kind in BAD_LINE_KINDS}


class _ChunkWriter:
    """Compresses and writes chunks in a helper thread (zlib releases the GIL meanwhile)."""

    def __init__(self, gzip_file: gzip.GzipFile, pool: ThreadPoolExecutor):
        self._gzip_file = gzip_file
        self._pool = pool
        self._pending: deque = deque()
        self._buffer: list[bytes] = []
        self._buffered = 0

    def add(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= WRITE_CHUNK_BYTES:
            self._submit()

    def _submit(self) -> None:
        data = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        self._pending.append(self._pool.submit(self._gzip_file.write, data))
        while len(self._pending) > 2:
            self._pending.popleft().result()

    def finish(self) -> None:
        self._submit()
        while self._pending:
            self._pending.popleft().result()


def _domain_lines(code: str, views: dict[bytes, int], spark_quoting: bool) -> list[bytes]:
    """The sorted lines of one domain code as a flat list of parts: prefix, title, count field."""
    titles = sorted(views)  # bytes order: the UTF-8 byte order of real files
    parts = [code.encode("ascii") + b" "] * (3 * len(titles))
    parts[1::3] = [_spark_quote(title) if b'"' in title else title for title in titles] if spark_quoting else titles
    parts[2::3] = map(COUNT_FIELDS.__getitem__, map(views.__getitem__, titles))
    return parts


def generate_hour(
    path,
    lines: int = FULL_HOUR_LINES,
    seed: int = 0,
    bad_lines: bool = True,
    spark_quoting: bool = False,
    blacklist_path=None,
    compresslevel: int = 6,
) -> dict:
    """Write a synthetic hourly pageviews file (gzip) at ``path`` and return statistics."""
    if lines < MIN_LINES:
        raise ValueError(f"lines must be at least {MIN_LINES}, not {lines}")
    rng = random.Random(seed)
    vocabularies = {script: _vocabulary(rng, script) for script in ("latin", *SCRIPTS)}
    shares = domain_codes(lines)
    codes = sorted(shares)
    bad = _bad_lines(rng, codes, vocabularies["latin"]) if bad_lines else {}
    bad_count = sum(len(kind_lines) for kind_lines in bad.values())
    good_lines = lines - bad_count
    lines_per_domain = _allocate_lines(shares, good_lines)
    blacklisted = _choose_blacklisted(rng, blacklist_path, lines_per_domain, lines) if blacklist_path else {}

    # The bad line at position p goes just before good line p (p == good_lines: at the end).
    all_bad = [line + b"\n" for kind in BAD_LINE_KINDS for line in bad.get(kind, [])]
    rng.shuffle(all_bad)
    bad_at = dict(zip(sorted(rng.sample(range(good_lines + 1), len(all_bad))), all_bad))

    quoted = title_bytes = offset = 0
    with open(path, "wb") as raw_file, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw_file, compresslevel=compresslevel, mtime=0
    ) as gzip_file, ThreadPoolExecutor(max_workers=1) as pool:
        writer = _ChunkWriter(gzip_file, pool)
        for code in codes:
            count = lines_per_domain[code]
            views = _domain_views(rng, code, count, blacklisted.get(code, {}), vocabularies)
            title_bytes += sum(map(len, views))
            if spark_quoting:
                quoted += sum(1 for title in views if b'"' in title)
            parts = _domain_lines(code, views, spark_quoting)
            for position in sorted((p for p in bad_at if offset <= p < offset + count), reverse=True):
                parts.insert(3 * (position - offset), bad_at[position])
            writer.add(b"".join(parts))
            offset += count
        if good_lines in bad_at:
            writer.add(bad_at[good_lines])
        writer.finish()

    return {
        "path": str(path),
        "seed": seed,
        "lines": good_lines + bad_count,
        "good_lines": good_lines,
        "bad_lines": {kind: len(kind_lines) for kind, kind_lines in bad.items()},
        "domains": len(codes),
        "blacklisted_pairs": sum(len(titles) for titles in blacklisted.values()),
        "spark_quoted_titles": quoted,
        "mean_title_bytes": round(title_bytes / good_lines, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wikitop.synthetic",
        description="Write a seeded, realistic synthetic hourly pageviews dump (gzip).",
    )
    parser.add_argument("output", type=Path, help="file to write, e.g. pageviews-20200101-010000.gz")
    parser.add_argument("--lines", type=int, default=FULL_HOUR_LINES, help="lines to write (default: a full hour)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spark-quoting", action="store_true", help='quote titles holding " as dumps do since 2023-02')
    parser.add_argument("--no-bad-lines", dest="bad_lines", action="store_false", help="write only well-formed lines")
    parser.add_argument("--blacklist", type=Path, help="include some pairs of this blacklist file")
    parser.add_argument("--compresslevel", type=int, default=6)
    args = parser.parse_args(argv)
    if args.lines < MIN_LINES:
        parser.error(f"--lines must be at least {MIN_LINES}")
    if args.blacklist is not None and not args.blacklist.is_file():
        parser.error(f"--blacklist {args.blacklist}: no such file")
    stats = generate_hour(
        args.output,
        lines=args.lines,
        seed=args.seed,
        bad_lines=args.bad_lines,
        spark_quoting=args.spark_quoting,
        blacklist_path=args.blacklist,
        compresslevel=args.compresslevel,
    )
    json.dump(stats, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

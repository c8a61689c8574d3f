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
import random
import re
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FULL_HOUR_LINES = 6_000_000
FULL_HOUR_DOMAINS = 1_800
MIN_DOMAINS = 40

# Pareto shape giving P(count == 1) = 1 - 2**-shape = 0.6, as in real hours.
COUNT_SHAPE = 1.32
WRITE_CHUNK_CHARS = 4_000_000

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
glk lrc mdf ie2 aa cho ho hz ii kj kr mh mus ng
""".split()

# Sister projects: suffix, number of top languages that have one, share of lines
# relative to that language's Wikipedia (desktop, mobile).
SISTER_PROJECTS = (
    ("d", 200, 0.05, 0.05),  # Wiktionary
    ("s", 80, 0.03, 0.02),  # Wikisource
    ("q", 95, 0.015, 0.015),  # Wikiquote
    ("b", 90, 0.02, 0.01),  # Wikibooks
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


LATIN_LETTERS = "abcdefghijklmnopqrstuvwxyz" * 6 + "áàâäãåçéèêëíìîïñóòôöõøúùûüýÿßæœłśźżčšžřěůőűğışțăđ"
SCRIPTS = {
    "latin": LATIN_LETTERS,
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
DEFAULT_WORD_LENGTH = (3, 11)
VOCABULARY_SIZE = {"latin": 40_000}
DEFAULT_VOCABULARY_SIZE = 4_000

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
NAMESPACES = (
    "Special:", "File:", "User:", "Talk:", "Category:", "Template:", "Wikipedia:",
    "User_talk:", "Portal:", "Help:", "Spezial:", "Datei:", "Benutzer:", "Служебная:",
    "Файл:", "特別:", "ファイル:", "خاص:", "ملف:", "Kategorie:", "Catégorie:",
)  # fmt: skip
SPECIAL_PAGES = (
    "Special:Search", "Special:Random", "Special:RecentChanges", "Special:Log/block",
    "Special:ListUsers", "Special:Watchlist", "Special:CreateAccount", "Special:UserLogin",
)  # fmt: skip
FILE_EXTENSIONS = (".jpg", ".svg", ".png", ".JPG", ".ogg", ".pdf", ".gif")
DISAMBIGUATORS = ("_(film)", "_(album)", "_(band)", "_(disambiguation)", "_(song)", "_(1999)", "_(TV_series)")
# Non-ASCII spaces and characters that sort differently in UTF-16 and UTF-8.
ODD_CHARACTERS = ("\u00a0", "\u3000", "\u2009", "😀", "🎉", "🇫🇷", "（株）", "ｶﾀｶﾅ", "\ufeff", "𝔘𝔫𝔦")

BAD_LINE_KINDS = (
    "wrong_field_count",
    "invalid_count",
    "negative_count",
    "empty_line",
    "empty_domain_code",
    "invalid_utf8",
)
_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def _domain_weights() -> dict[str, float]:
    """Share of lines of every possible domain code (not normalised)."""
    weights: dict[str, float] = {}
    for rank, lang in enumerate(LANGUAGES):
        wikipedia = (2.5 if lang == "en" else 1.0) / (rank + 2) ** 1.5
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
    chosen = list(SHOWCASE_CODES)
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


def _vocabulary(rng: random.Random, script: str) -> list[str]:
    letters = SCRIPTS[script]
    shortest, longest = WORD_LENGTHS.get(script, DEFAULT_WORD_LENGTH)
    words = []
    for _ in range(VOCABULARY_SIZE.get(script, DEFAULT_VOCABULARY_SIZE)):
        word = "".join(rng.choices(letters, k=rng.randint(shortest, longest)))
        words.append(word.capitalize() if rng.random() < 0.5 else word)
    return words


def dump_title(blacklist_title: str) -> str | None:
    """A blacklist title as a dump writes it: fully percent-decoded, spaces as ``_``.

    None when a decoding step gives invalid UTF-8, or the result is empty or holds
    control characters: no dump line could match such an entry.
    """
    title = blacklist_title.replace(" ", "_")
    while True:
        raw = _PERCENT_ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), title.encode("utf-8"))
        try:
            decoded = raw.decode("utf-8").replace(" ", "_")
        except UnicodeDecodeError:
            return None
        if decoded == title:
            break
        title = decoded
    if not title or any(ord(char) < 0x20 or char == "\x7f" for char in title):
        return None
    return title


def _blacklist_candidates(path, domains: dict[str, int]) -> list[tuple[str, str]]:
    """Distinct (domain_code, dump title) pairs of the blacklist for domains with room for them."""
    seen = set()
    candidates = []
    for raw in Path(path).read_bytes().split(b"\n"):
        try:
            line = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            continue
        domain_code, _, title = line.partition(" ")
        if domains.get(domain_code, 0) < 20 or not title or " " in title:
            continue
        decoded = dump_title(title)
        if decoded is not None and (domain_code, decoded) not in seen:
            seen.add((domain_code, decoded))
            candidates.append((domain_code, decoded))
    return candidates


def _choose_blacklisted(rng, path, domains: dict[str, int], lines: int) -> dict[str, list[tuple[str, bool]]]:
    """Blacklisted titles to include per domain code, each with whether it gets a top-25 count.

    Entries are drawn evenly from the three spellings of the list (plain, percent-encoded,
    doubly encoded) so that every canonicalisation path is exercised.
    """
    wanted = min(300, max(10, lines // 2_000))
    by_spelling: dict[str, list[tuple[str, str]]] = {"plain": [], "encoded": [], "double": []}
    for domain_code, title in _blacklist_candidates(path, domains):
        by_spelling["plain"].append((domain_code, title))
    # The spelling is that of the list's line, so classify again from the raw file.
    by_spelling = _group_by_spelling(path, by_spelling["plain"])
    chosen: list[tuple[str, str]] = []
    per_domain: dict[str, int] = {}
    groups = [rng.sample(group, len(group)) for group in by_spelling.values()]
    while len(chosen) < wanted and any(groups):
        for group in groups:
            while group:
                domain_code, title = group.pop()
                if per_domain.get(domain_code, 0) < domains[domain_code] // 10:
                    per_domain[domain_code] = per_domain.get(domain_code, 0) + 1
                    chosen.append((domain_code, title))
                    break
    result: dict[str, list[tuple[str, bool]]] = {}
    for index, (domain_code, title) in enumerate(chosen):
        result.setdefault(domain_code, []).append((title, index % 3 == 0))
    return result

"""Build src/wikitop/data/wikis.tsv, namespaces.tsv and main_pages.tsv from Wikimedia's sources.

Inputs (see CONTRIBUTING.md for how to get them):
  --mediawiki DIR    MediaWiki as Debian's `mediawiki` package installs it (usr/share/mediawiki):
                     languages/messages/Messages*.php, languages/i18n/*.json, includes/Defines.php,
                     extensions-core/{Scribunto,Gadgets}/*.namespaces.php
  --config DIR       a checkout of wikimedia/operations-mediawiki-config: dblists/, wmf-config/
                     core-Namespaces.php and InitialiseSettings.php
  --main-pages FILE  wikimedia/apps-android-wikipedia's staticdata/MainPageNameData.kt; given
                     several times (versions of several years), every title listed counts, as
                     dumps of those years hold the main page of their time
Each with its version (--mediawiki-version, --config-version, --main-pages-version), written in
the headers. The same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

FAMILIES = {  # dblist name -> (db name suffix, host's second label)
    "wikipedia": ("wiki", "wikipedia"), "wikibooks": ("wikibooks", "wikibooks"),
    "wiktionary": ("wiktionary", "wiktionary"), "wikinews": ("wikinews", "wikinews"),
    "wikiquote": ("wikiquote", "wikiquote"), "wikisource": ("wikisource", "wikisource"),
    "wikiversity": ("wikiversity", "wikiversity"), "wikivoyage": ("wikivoyage", "wikivoyage"),
    "wikimedia": ("wikimedia", "wikimedia"),
}  # fmt: skip
NEEDED = ("wgNamespaceAliases", "wgExtraNamespaces", "wgMetaNamespace", "wgMetaNamespaceTalk",
          "wgServer", "wgLanguageCode", "wgSitename", "wgExtraGenderNamespaces")
EXTENSIONS = ("Scribunto/Scribunto.namespaces.php", "Gadgets/Gadgets.namespaces.php")
TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|\#(?!\[)[^\n]*|/\*.*?\*/)
  | (?P<sq>'(?:[^'\\]|\\.)*')
  | (?P<dq>"(?:[^"\\]|\\.)*")
  | (?P<num>-?\d+)
  | (?P<var>\$[A-Za-z_]\w*)
  | (?P<name>[A-Za-z_\\][\w\\]*)
  | (?P<op>=>|::|[\[\](),;=.?:+\-*/<>!&|{}@%^~])
""", re.S | re.X)


class Opaque:
    """A PHP expression that is not a literal (a function call, an operation)."""


def tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    if text.startswith("<?php"):
        pos = 5
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read PHP at {text[pos:pos + 40]!r}")
        pos = match.end()
        if match.lastgroup != "space":
            out.append((match.lastgroup, match.group()))
    return out


def string_value(kind: str, text: str) -> str:
    body = text[1:-1]
    if kind == "sq":
        return re.sub(r"\\([\\'])", r"\1", body)
    return re.sub(r'\\([\\"$])', r"\1", body).replace("\\n", "\n").replace("\\t", "\t")


def parse_value(toks, i, constants):
    """The value of the expression at toks[i] and the index after it."""
    kind, text = toks[i]
    if text == "[" or (kind == "name" and text.lower() == "array" and toks[i + 1][1] == "("):
        return parse_array(toks, i + (1 if text == "[" else 2), "]" if text == "[" else ")", constants)
    end = i
    depth = 0
    while True:
        k, t = toks[end]
        if depth == 0 and t in (",", "]", ")", ";", "=>"):
            break
        depth += t in "([{"
        depth -= t in ")]}"
        end += 1
    if end == i + 1:
        if kind in ("sq", "dq"):
            return string_value(kind, text), end
        if kind == "num":
            return int(text), end
        if kind == "name":
            lower = text.lower()
            if lower in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[lower], end
            return constants.get(text, Opaque()), end
    return Opaque(), end


def parse_array(toks, i, close, constants):
    items: dict = {}
    index = 0
    while toks[i][1] != close:
        key, i = parse_value(toks, i, constants)
        if toks[i][1] == "=>":
            value, i = parse_value(toks, i + 1, constants)
        else:
            key, value, index = index, key, index + 1
        if not isinstance(key, Opaque):
            items[key] = value
        if toks[i][1] == ",":
            i += 1
    return items, i + 1


def defines(text: str, constants: dict) -> None:
    for name, value in re.findall(r"define\(\s*'(\w+)',\s*([\w-]+)\s*\)", text):
        if re.fullmatch(r"-?\d+", value) or value in constants:
            constants[name] = int(value) if value not in constants else constants[value]


def assignments(text: str, constants: dict) -> dict:
    """The top-level `$name = value;` and `$name['key'] = value;` of a PHP file."""
    toks = tokens(text)
    found: dict = {}
    for i, (kind, text_) in enumerate(toks):
        if kind != "var" or (i and toks[i - 1][1] not in (";", "}")) and i > 0 and toks[i - 1][0] != "op":
            continue
        name = text_[1:]
        if toks[i + 1][1] == "=":
            found[name], _ = parse_value(toks, i + 2, constants)
        elif toks[i + 1][1] == "[" and toks[i + 2][0] == "sq" and toks[i + 3][1] == "]" and toks[i + 4][1] == "=":
            value, _ = parse_value(toks, i + 5, constants)
            found.setdefault(name, {})[string_value("sq", toks[i + 2][1])] = value
    return found


def settings(text: str, constants: dict) -> dict:
    """The NEEDED settings of a wmf-config file (`'wgName' => [...]`)."""
    toks = tokens(text)
    found = {}
    for i, (kind, text_) in enumerate(toks):
        if kind == "sq" and text_[1:-1] in NEEDED and toks[i + 1][1] == "=>" and toks[i + 2][1] == "[":
            found.setdefault(text_[1:-1], parse_value(toks, i + 2, constants)[0])
    return found


def resolve(setting: dict, wiki: str, tags: list[str]):
    """A setting's value for a wiki as MediaWiki's SiteConfiguration picks it: the wiki's own
    value, else '+wiki' and '+tag' values merged over the first tag's, else 'default'."""
    if wiki in setting:
        return setting[wiki]
    parts = [setting[f"+{wiki}"]] if f"+{wiki}" in setting else []
    base = setting.get("default")
    for tag in tags:
        if tag in setting:
            base = setting[tag]
            break
        if f"+{tag}" in setting:
            parts.append(setting[f"+{tag}"])
    if not parts:
        return base
    merged: dict = {}
    for part in parts + ([base] if isinstance(base, dict) else []):
        for key, value in part.items():
            merged.setdefault(key, value)
    return merged


def dblist(config: Path, name: str) -> list[str]:
    lines = (config / "dblists" / f"{name}.dblist").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def language_file(mediawiki: Path, code: str) -> Path:
    name = code.replace("-", "_")
    return mediawiki / "languages" / "messages" / f"Messages{name[:1].upper()}{name[1:]}.php"


class Languages:
    """Namespace names, aliases and main page titles of each language, its fallbacks merged."""

    def __init__(self, mediawiki: Path, constants: dict):
        self.mediawiki, self.constants = mediawiki, constants
        self.files: dict[str, dict] = {}
        self.extensions = [assignments((mediawiki / "extensions-core" / path).read_text(encoding="utf-8"),
                                       constants) for path in EXTENSIONS]

    def file(self, code: str) -> dict:
        if code not in self.files:
            path = language_file(self.mediawiki, code)
            self.files[code] = assignments(path.read_text(encoding="utf-8"), self.constants) if path.exists() else {}
        return self.files[code]

    def chain(self, code: str) -> list[str]:
        codes, todo = [], [code]
        while todo:
            current = todo.pop(0)
            if current in codes:
                continue
            codes.append(current)
            fallback = self.file(current).get("fallback")
            todo += [c.strip() for c in fallback.split(",")] if isinstance(fallback, str) else []
        return codes + (["en"] if "en" not in codes else [])

    def names(self, code: str) -> dict[int, str]:
        names: dict[int, str] = {}
        for current in self.chain(code):
            for namespace, name in self.file(current).get("namespaceNames", {}).items():
                if isinstance(name, str):
                    names.setdefault(namespace, name)
            for extension in self.extensions:
                for namespace, name in extension.get("namespaceNames", {}).get(current, {}).items():
                    if isinstance(name, str):
                        names.setdefault(namespace, name)
        return names

    def aliases(self, code: str) -> set[tuple[int, str]]:
        pairs = set()
        for current in self.chain(code):
            data = self.file(current)
            pairs |= {(ns, name) for name, ns in data.get("namespaceAliases", {}).items() if isinstance(ns, int)}
            for ns, forms in data.get("namespaceGenderAliases", {}).items():
                pairs |= {(ns, form) for form in forms.values() if isinstance(form, str)}
            for extension in self.extensions:
                aliases = extension.get("namespaceAliases", {}).get(current, {})
                pairs |= {(ns, name) for name, ns in aliases.items() if isinstance(ns, int)}
        return pairs

    def main_page(self, code: str) -> str:
        for current in self.chain(code):
            path = self.mediawiki / "languages" / "i18n" / f"{current}.json"
            if path.exists() and "mainpage" in (messages := json.loads(path.read_text(encoding="utf-8"))):
                return messages["mainpage"]
        raise ValueError(f"no mainpage message for {code}")


def title(name: str) -> str:
    return name.replace(" ", "_")


def expand_talk(pattern: str, meta: str) -> str:
    """A language's project talk name ('$1_talk') for a wiki's project namespace; a
    {{GRAMMAR:form|$1}} is taken as $1 itself (the form is language code's business)."""
    return title(re.sub(r"\{\{GRAMMAR:[^|]*\|([^}]*)\}\}", r"\1", pattern).replace("$1", meta))


def build(mediawiki: Path, config: Path, main_pages_kts: list[Path], versions: dict[str, str]) -> dict[str, str]:
    constants: dict = {}
    defines((mediawiki / "includes" / "Defines.php").read_text(encoding="utf-8"), constants)
    for path in EXTENSIONS:
        defines((mediawiki / "extensions-core" / path).read_text(encoding="utf-8"), constants)
    languages = Languages(mediawiki, constants)
    conf: dict = {}
    for name in ("InitialiseSettings.php", "core-Namespaces.php"):
        conf.update(settings((config / "wmf-config" / name).read_text(encoding="utf-8"), constants))
    closed = set(dblist(config, "closed")) | set(dblist(config, "private")) | set(dblist(config, "deleted"))
    family_of = {wiki: family for family in FAMILIES for wiki in dblist(config, family)}
    wikis = sorted(set(dblist(config, "all")) - closed)
    main_pages: dict[str, set[str]] = {}
    for path in main_pages_kts:
        for code, text in re.findall(r'^\s*"([^"]+)" to "((?:[^"\\]|\\.)*)"', path.read_text(encoding="utf-8"), re.M):
            main_pages.setdefault(code, set()).add(title(json.loads(f'"{text}"')))
    wiki_rows, ns_rows, page_rows = [], set(), []
    canonical = languages.names("en")
    used_languages = set()
    for wiki in wikis:
        family = family_of.get(wiki)
        lang = wiki[: -len(FAMILIES[family][0])].replace("_", "-") if family else ""
        tags = [family] if family else []
        server = resolve(conf["wgServer"], wiki, tags)
        if not isinstance(server, str) or not server.endswith(".org"):
            continue  # a wiki under another domain (wikifunctions...): no domain code
        host = server.replace("$lang", lang).removeprefix("//")[: -len(".org")]
        if host.count(".") != 1:
            host = "www." + host  # wikisource.org
        language = resolve(conf["wgLanguageCode"], wiki, tags)
        language = language.replace("$lang", lang) if isinstance(language, str) and lang else "en"
        if not language_file(mediawiki, language).exists() and language != "en":
            language = "en"
        used_languages.add(language)
        sitename = resolve(conf["wgSitename"], wiki, tags)
        meta = resolve(conf["wgMetaNamespace"], wiki, tags) or (title(sitename) if isinstance(sitename, str) else "")
        meta_talk = resolve(conf["wgMetaNamespaceTalk"], wiki, tags)
        names = languages.names(language)
        own = {(4, title(meta)), (5, title(meta_talk) if isinstance(meta_talk, str)
                                  else expand_talk(names.get(5, "$1_talk"), meta))}
        extra = resolve(conf["wgExtraNamespaces"], wiki, tags) or {}
        own |= {(ns, title(name)) for ns, name in extra.items() if isinstance(name, str)}
        valid = set(canonical) | set(extra)
        aliases = resolve(conf["wgNamespaceAliases"], wiki, tags) or {}
        own |= {(ns, title(name)) for name, ns in aliases.items() if isinstance(ns, int) and ns in valid}
        for ns, forms in (resolve(conf["wgExtraGenderNamespaces"], wiki, tags) or {}).items():
            own |= {(ns, title(form)) for form in forms.values() if isinstance(form, str)}
        ns_rows |= {(wiki, ns, name) for ns, name in own if name}
        wiki_rows.append((wiki, host, language))
        if family == "wikipedia" and lang in main_pages:
            page_rows += [(wiki, page, "apps") for page in sorted(main_pages[lang])]
        else:
            page_rows.append((wiki, title(languages.main_page(language)), "mediawiki-default"))
    for language in used_languages:
        names = languages.names(language)
        pairs = {(ns, name) for ns, name in names.items() if ns not in (4, 5)} | {
            (ns, name) for ns, name in languages.aliases(language) if ns not in (4, 5) or "$1" not in name}
        ns_rows |= {(f"lang:{language}", ns, title(name)) for ns, name in pairs if name and ns in canonical}
    ns_rows |= {("*", ns, title(name)) for ns, name in canonical.items() if name and ns not in (4, 5)}
    ns_rows |= {("*", 4, "Project"), ("*", 5, "Project_talk"), ("*", 6, "Image"), ("*", 7, "Image_talk")}
    sources = "\n".join(f"# source: {name} {version}" for name, version in sorted(versions.items()))
    return {
        "wikis.tsv": table(
            "Each open public wiki of Wikimedia under a .org host: its database name, its project (the\n"
            "# host without .org, as --group project names it) and its content language.", sources,
            ("wiki", "project", "language"), wiki_rows),
        "namespaces.tsv": table(
            "Namespace names (spaces as _; matched case-insensitively) by scope: * (every wiki:\n"
            "# MediaWiki's canonical names), lang:CODE (the wikis of that content language: MediaWiki's\n"
            "# names and aliases, fallbacks merged, with Scribunto's and Gadgets'), or a wiki's database\n"
            "# name (its project namespace, extra namespaces and aliases from Wikimedia's configuration).\n"
            "# namespace is MediaWiki's number: -1 Special, 0 articles.", sources,
            ("scope", "namespace", "name"), sorted(ns_rows, key=lambda row: (row[0], row[1], row[2]))),
        "main_pages.tsv": table(
            "The main page of each wiki (spaces as _; a wiki may have had several). source apps: the\n"
            "# Wikipedia apps' list of every Wikipedia's main page; mediawiki-default: MediaWiki's\n"
            "# default title in the wiki's language, which a wiki keeps unless it renamed its main\n"
            "# page: a renamed sister project's main page is unknown to these sources.",
            sources, ("wiki", "title", "source"), page_rows),
    }


def table(description: str, sources: str, columns: tuple[str, ...], rows) -> str:
    lines = [f"# {description}", "# Generated by scripts/make_wiki_data.py: do not edit.", sources,
             "# " + "\t".join(columns)]
    lines += ["\t".join(str(value) for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediawiki", type=Path, required=True)
    parser.add_argument("--mediawiki-version", required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--config-version", required=True)
    parser.add_argument("--main-pages", type=Path, action="append", required=True)
    parser.add_argument("--main-pages-version", action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "src" / "wikitop" / "data")
    args = parser.parse_args(argv)
    versions = {"Debian mediawiki package": args.mediawiki_version,
                "wikimedia/operations-mediawiki-config": args.config_version,
                "wikimedia/apps-android-wikipedia staticdata/MainPageNameData.kt": " ".join(args.main_pages_version)}
    for name, text in build(args.mediawiki, args.config, args.main_pages, versions).items():
        (args.out / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

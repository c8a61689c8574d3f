"""The generated wiki tables against names copied by hand from MediaWiki's and Wikimedia's sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from wikitop.rank.projects import namespace_names, wikis

EXPECTED = Path(__file__).parent / "data" / "wiki_names.tsv"


def expected_rows() -> list[list[str]]:
    lines = EXPECTED.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line and not line.startswith("#")]


def names_of(wiki: str) -> set[tuple[int, str]]:
    languages = {db: language for db, language in wikis().values()}
    if wiki not in languages:
        return set()
    names = namespace_names()
    return {pair for scope in ("*", f"lang:{languages[wiki]}", wiki) for pair in names.get(scope, ())}


def test_the_sample_covers_at_least_40_wikis():
    assert len({row[0] for row in expected_rows()}) >= 40


@pytest.mark.parametrize("wiki, namespace, name, expected, where", expected_rows())
def test_generated_names_match_the_sources(wiki, namespace, name, expected, where):
    names = names_of(wiki)
    if expected == "present":
        assert (int(namespace), name) in names, where
    else:
        assert name not in {listed for _, listed in names}, where

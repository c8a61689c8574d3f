import re
from datetime import UTC, datetime

import pytest

from wikitop.hours import (
    FIRST_HOUR,
    HourError,
    check_hour_available,
    default_hour,
    dump_file_name,
    dump_relative_path,
    hours_between,
    parse_dump_file_name,
    parse_hour,
    parse_totals_file_name,
)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["2020-01-22T02", "2020-01-22T02:00", "2020-01-22 02:00:00", "2020-01-22T02:00:00Z",
     "2020-01-22T04:00+02:00", "2020-01-21T21:00-05:00", "2020-01-21T21:00-0500", "2020-01-22T02:00+00:00",
     "2020-01-22T04+02", "2020-01-22T07:45+05:45", "2020-01-23T01:59+23:59", "2020-01-22T2", " 2020-01-22T02 ",
     "2020-01-22 2:00", "2020-01-22T2Z", "2020-01-22T02:00:00.000"],
)
def test_accepted_spellings_name_the_same_utc_hour(text):
    assert parse_hour(text) == utc(2020, 1, 22, 2)


def test_offset_can_cross_midnight():
    assert parse_hour("2020-01-01T01:00+03:00") == utc(2019, 12, 31, 22)


def test_a_date_is_its_first_hour():
    assert parse_hour("2020-01-24") == utc(2020, 1, 24, 0)


@pytest.mark.parametrize("text", ["", "yesterday", "2020-01-22T25", "2020-02-30T01", "2020-01-22T02:30", "2020/01/22",
                                  "2020-W04-3", "20200122T02", "2020-01-22T123"])
def test_bad_hours_are_rejected_with_a_reason(text):
    with pytest.raises(HourError):
        parse_hour(text)


@pytest.mark.parametrize(
    "text, reason",
    [("2020-01-22T02:00+00:30", "01:30:00 UTC"), ("2020-01-22T02:00+05:45", "20:15:00 UTC"),
     ("2020-01-22T02:00-00:01", "02:01:00 UTC"), ("2020-01-22T02:30", "not the start of an hour"),
     ("2020-01-22T02:00+25:00", "not between -23:59 and +23:59"), ("2020-01-22T02:00+24:00", "not between"),
     ("2020-01-22T02:00-2400", "not between"), ("2020-01-22T02:00+02:60", "not between")],
)
def test_offsets_that_do_not_give_the_start_of_an_hour_are_refused(text, reason):
    with pytest.raises(HourError, match=re.escape(reason)) as refused:
        parse_hour(text)
    assert "\n" not in str(refused.value) and text in str(refused.value)


def test_the_cli_refuses_an_offset_that_does_not_give_the_start_of_an_hour(cli, tmp_path):
    result = cli("hour", "2020-01-22T02:00+00:30", "--source", tmp_path, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "'2020-01-22T02:00+00:30' is not the start of an hour: it is 2020-01-22T01:30:00 UTC" in result.stderr
    assert not (tmp_path / "out").exists()


def test_file_is_stamped_with_the_end_of_the_hour():
    hour = utc(2020, 1, 22, 2)
    assert dump_file_name(hour) == "pageviews-20200122-030000.gz"
    # The last hour of a month lives in the next month's folder.
    assert dump_relative_path(utc(2020, 1, 31, 23)) == "2020/2020-02/pageviews-20200201-000000.gz"


def test_file_names_read_back_as_the_hour_they_were_named_after(tmp_path):
    for hour in (utc(2020, 1, 22, 2), utc(2020, 1, 31, 23), utc(2019, 12, 31, 23)):
        assert parse_dump_file_name(dump_file_name(hour)) == (hour, "")
        assert parse_dump_file_name(dump_file_name(hour) + ".part-0-99-of-300") == (hour, ".part-0-99-of-300")
    assert parse_totals_file_name("totals-20200122-02.parquet") == utc(2020, 1, 22, 2)
    for name in ("totals-20200122-02.parquet.lock", ".totals-20200122-02.parquet.1.tmp", "totals-2020012202.parquet"):
        assert parse_totals_file_name(name) is None
    assert parse_dump_file_name("pageviews-20200122-033000.gz") is None


def test_default_is_the_hour_24_hours_before_the_current_hour():
    assert default_hour(utc(2026, 11, 28, 3, 59, 59)) == utc(2026, 11, 27, 3)


def test_hours_before_the_dataset_or_not_over_are_refused():
    now = utc(2026, 11, 28, 3, 30)
    with pytest.raises(HourError, match="before the pageview dumps begin"):
        check_hour_available(utc(2015, 4, 30, 23), now)
    check_hour_available(FIRST_HOUR, now)
    check_hour_available(utc(2026, 11, 28, 2), now)
    with pytest.raises(HourError, match="not over"):
        check_hour_available(utc(2026, 11, 28, 3), now)


def test_ranges_include_both_ends_and_refuse_reversed_ones():
    hours = list(hours_between(utc(2020, 1, 1, 22), utc(2020, 1, 2, 1)))
    assert [h.hour for h in hours] == [22, 23, 0, 1]
    with pytest.raises(HourError):
        list(hours_between(utc(2020, 1, 2), utc(2020, 1, 1)))


@pytest.mark.parametrize(("text", "shown"), [
    ("2020-01-22T02:00.5", "2020-01-22T02:00:00.500000"),
    ("2020-01-22T02:00:00.25", "2020-01-22T02:00:00.250000"),
    ("2020-01-22T02:30", "2020-01-22T02:30:00"),
])
def test_an_hour_with_minutes_seconds_or_fractions_is_echoed_as_read(text, shown):
    with pytest.raises(HourError, match=rf"it is {re.escape(shown)} UTC, minutes, seconds and their fractions"):
        parse_hour(text)

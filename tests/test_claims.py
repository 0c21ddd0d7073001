"""Tests for cnnbias.claims: claims can fail, lines are parseable."""

import math

import pytest
from cnnbias.claims import CLAIM_LINE, Claims, fmt


def test_rules_pass_and_fail():
    c = Claims("demo")
    assert c.at_least("demo.a", "s", 1.0, 0.5).passed
    assert not c.at_least("demo.b", "s", 0.4, 0.5).passed
    assert not c.at_least("demo.nan", "s", math.nan, 0.5).passed
    assert c.at_most("demo.c", "s", 0.1, 0.5).passed
    assert not c.close("demo.d", "s", 0.3, 0.5, 0.1).passed
    assert c.close("demo.e", "s", 0.45, 0.5, 0.1).passed
    assert c.greater("demo.f", "s", 1.0, 0.5, 0.2, k=2).passed
    assert not c.greater("demo.g", "s", 1.0, 0.7, 0.2, k=2).passed
    assert c.n_failed == 4 and c.n_passed == 4


def test_ids_validated():
    c = Claims("demo")
    with pytest.raises(ValueError, match="must start with"):
        c.at_least("other.a", "s", 1, 0)
    c.at_least("demo.a", "s", 1, 0)
    with pytest.raises(ValueError, match="already"):
        c.at_least("demo.a", "s", 1, 0)
    with pytest.raises(ValueError, match="prefix"):
        Claims("bad prefix")
    with pytest.raises(ValueError, match="tol"):
        c.close("demo.t", "s", 1, 1, -1)


def test_report_lines_parse(capsys):
    c = Claims("demo")
    c.at_least("demo.a", "first", 0.123456, 0.1, paper="0.12")
    c.close("demo.b", "second", 2.0, 1.0, 0.5)
    c.report()
    out = capsys.readouterr().out.splitlines()
    parsed = [CLAIM_LINE.match(line) for line in out]
    hits = [m for m in parsed if m]
    assert [m["id"] for m in hits] == ["demo.a", "demo.b"]
    assert [m["status"] for m in hits] == ["PASS", "FAIL"]
    assert hits[0]["measured"] == "0.1235" and hits[0]["paper"] == "0.12"
    assert out[-1] == "demo: 1 of 2 claims pass"
    assert "FAIL" not in out[-1]


def test_report_empty_raises():
    with pytest.raises(ValueError):
        Claims("demo").report()


def test_fmt():
    assert fmt(3) == "3" and fmt(0.0) == "0" and fmt(1234567.0) == "1.235e+06" and fmt("x") == "x"

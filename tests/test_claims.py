"""Tests for cnnbias.claims: claims can fail, lines are parseable."""

import json
import math

import pytest
from cnnbias.claims import CLAIMS_MIME, Claims, fmt, fmt_bound, fmt_se, rounded


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


def test_report_text_and_records(capsys):
    c = Claims("demo", scale="paper")
    c.at_least("demo.a", "first", 0.123456, 0.1, paper="0.12", se=0.0123456)
    c.close("demo.b", "second", 2.0, 1.0, 0.5)
    c.greater("demo.c", "third", 1.0, 0.25, 0.1)
    c.check("demo.d", "fourth", True, "3 of 4 runs, 1.5e-3", "all", ">= 3", value={"runs": 3, "x": 1.23456789})
    c.check("demo.e", "fifth", False, "ratio 2.5 at n=40", "3", ">= 3")
    c.report()  # outside IPython: the readable text
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "demo.a  PASS  measured=0.1235 | paper=0.12 | tol=>= 0.1"
    assert out[1] == "    first" and out[-1] == "demo: 3 of 5 claims pass"
    recs = c.bundle()[CLAIMS_MIME]["claims"]
    assert [r["status"] for r in recs] == ["PASS", "FAIL", "PASS", "PASS", "FAIL"]
    assert recs[0]["values"] == {"value": 0.1235} and recs[0]["se"] == 0.01235 and recs[0]["scale"] == "paper"
    assert recs[1]["paper_value"] == 1.0
    assert recs[2]["values"] == {"a": 1.0, "b": 0.25, "diff": 0.75} and recs[2]["se"] == 0.1
    assert recs[3]["values"] == {"runs": 3, "x": 1.235}
    assert recs[4]["values"] == {"x0": 2.5, "x1": 40}  # numbers written in `measured` (ints kept)
    json.dumps(recs, allow_nan=False)  # strict JSON
    assert "<table" in c.bundle()["text/html"] and "<strong>FAIL</strong>" in c.bundle()["text/html"]


def test_records_are_strict_json_with_nan():
    c = Claims("demo")
    c.at_least("demo.nan", "s", math.nan, 0.5)
    rec = c.as_records()[0]
    assert rec["values"] == {"value": "nan"} and rec["status"] == "FAIL"
    json.dumps(rec, allow_nan=False)


def test_rounded_and_validation():
    assert rounded(0.123456) == 0.1235 and rounded(3) == 3 and rounded(None) is None
    c = Claims("demo")
    with pytest.raises(ValueError, match="se"):
        c.greater("demo.x", "s", 1, 0, math.nan)


def test_report_empty_raises():
    with pytest.raises(ValueError):
        Claims("demo").report()


def test_fmt():
    assert fmt(3) == "3" and fmt(0.0) == "0" and fmt(1234567.0) == "1.235e+06" and fmt("x") == "x"


def test_fmt_bound_hides_noise_digits():
    assert fmt_bound(2.06e-14, 1e-12) == "< 1e-12" and fmt_bound(-3e-15, 1e-12) == "< 1e-12"
    assert fmt_bound(3e-9, 1e-12) == "3.0e-09 (exceeds 1e-12)"
    with pytest.raises(ValueError, match="tol"):
        fmt_bound(1.0, 0)


def test_fmt_se_rounds_to_the_error():
    assert fmt_se(0.123456, 0.0042) == "0.123 ± 0.004"
    assert fmt_se(12.34, 1.6) == "12 ± 2"
    assert fmt_se(1234.0, 56.0) == "1230 ± 60"
    assert fmt_se(0.5, 0.0) == "0.5 ± 0"


def test_residual_claim_records_the_bound():
    c = Claims("demo")
    ok = c.residual("demo.r", "identity", 1.96e-14, 1e-12)
    bad = c.residual("demo.s", "identity", 2e-9, 1e-12)
    assert ok.passed and ok.measured == "< 1e-12" and ok.values == {"bound": 1e-12}
    assert not bad.passed and bad.values == {"value": 2e-9}


def test_library_checks_are_reported_apart(capsys):
    c = Claims("demo")
    c.at_least("demo.a", "a claim", 1.0, 0.5)
    c.checks.residual("demo.identity", "an identity of the code", 1e-16, 1e-12)
    b = c.bundle()
    assert [r["id"] for r in b[CLAIMS_MIME]["claims"]] == ["demo.a"]
    assert [r["id"] for r in b[CLAIMS_MIME]["checks"]] == ["demo.identity"]
    assert "Library checks" in b["text/plain"] and "demo: 1 of 1 checks pass" in b["text/plain"]
    assert len(c) == 1 and c.checks.kind == "check"
    with pytest.raises(ValueError, match="kind"):
        Claims("demo", kind="other")

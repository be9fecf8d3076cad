"""Effect sizes and random-effects pooling: against metafor's published results, against metafor
itself when R is installed, and `kb meta` on a freshly built KB."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from kb.ingest.build import build_kb
from kb.cli import cli
from kb.evidence.effects import Effect, Exclusion, se_from_ci, smd_from_means, study_effect
from kb.evidence.meta import pool

#: metafor's dat.bcg (BCG vaccine trials, Colditz et al. 1994): tpos, tneg, cpos, cneg.
BCG = [(4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619),
       (33, 5036, 47, 5761), (180, 1361, 372, 1079), (8, 2537, 10, 619),
       (505, 87886, 499, 87892), (29, 7470, 45, 7232), (17, 1699, 65, 1600),
       (186, 50448, 141, 27197), (5, 2493, 3, 2338), (27, 16886, 29, 17825)]


def _log_rr() -> tuple[list[float], list[float]]:
    """escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)."""
    yi = [math.log((a / (a + b)) / (c / (c + d))) for a, b, c, d in BCG]
    vi = [1 / a - 1 / (a + b) + 1 / c - 1 / (c + d) for a, b, c, d in BCG]
    return yi, vi


def test_dersimonian_laird_matches_metafors_published_bcg_results() -> None:
    # metafor's tests/testthat/test_misc_rma_vs_metan.r: rma(yi, vi, data=dat, method="DL")
    result = pool(*_log_rr(), method="dl")
    assert result.estimate == pytest.approx(-0.7141, abs=1e-4)
    assert (result.ci_low, result.ci_high) == pytest.approx((-1.0644, -0.3638), abs=1e-4)
    assert result.tau2 == pytest.approx(0.3088, abs=1e-4)
    assert result.i2 == pytest.approx(92.1173, abs=1e-4)
    assert result.q == pytest.approx(152.2330, abs=1e-4)


def test_paule_mandel_matches_metafor_on_bcg() -> None:
    # rma(yi, vi, data=dat, method="PM", control=list(tol=1e-12)) with metafor 3.8-1 (its default
    # tolerance stops earlier: -0.7149704 and tau2 0.3180937, within 3e-5 of these)
    result = pool(*_log_rr())
    assert result.method == "Paule-Mandel"
    assert result.estimate == pytest.approx(-0.7149681535, abs=1e-8)
    assert result.se == pytest.approx(0.1808921915, abs=1e-8)
    assert (result.ci_low, result.ci_high) == pytest.approx((-1.0695103340, -0.3604259730),
                                                            abs=1e-8)
    assert result.tau2 == pytest.approx(0.3180684522, abs=1e-8)
    assert result.i2 == pytest.approx(92.3303379542, abs=1e-6)


@pytest.mark.parametrize("method", ["dl", "pm"])
def test_a_negative_tau2_is_clamped_at_zero(method: str) -> None:
    # DL's moment estimate is negative here (Q < df); metafor reports 0 and the common effect
    result = pool([0.10, 0.12, 0.11], [0.01, 0.02, 0.015], method=method)
    assert result.tau2 == 0.0
    assert result.estimate == pytest.approx(0.1076923077, abs=1e-9)
    assert result.ci_low == pytest.approx(-0.02546102475, abs=1e-9)
    assert (result.pi_low, result.pi_high) == pytest.approx((result.ci_low, result.ci_high))


def test_hedges_g_matches_metafor_escalc() -> None:
    # escalc("SMD", m1i=10.27, sd1i=2.96, n1i=27, m2i=4.75, sd2i=1.45, n2i=27)
    assert smd_from_means(10.27, 2.96, 27, 4.75, 1.45, 27) == pytest.approx(
        (2.3340591425, 0.1245169637), abs=1e-9)


def test_a_small_trials_ci_gives_its_se_by_t() -> None:
    # Cochrane Handbook 6.5.2.3: width / (2 t[0.975, n1+n2-2]) below 60 per group, else / 3.92
    assert se_from_ci(1.62, 14.52, 70) == pytest.approx(12.9 / (2 * 1.9944371), abs=1e-6)
    assert se_from_ci(1.62, 14.52, None) == pytest.approx(12.9 / 3.919928, abs=1e-5)


def _row(arm: str, role: str, quantity: str, statistic: str, value: float, n: int | None = None,
         instrument: str = "MAS") -> dict:
    return {"arm": arm, "arm_role": role, "quantity": quantity, "statistic": statistic,
            "value": value, "n": n, "instrument": instrument, "source_url": "https://x.org/t"}


def test_lower_is_better_instruments_are_flipped_to_favour_the_intervention() -> None:
    rows = [_row("cells vs sham", "intervention", "adjusted_difference", "mean", -0.72, 72),
            _row("cells vs sham", "intervention", "adjusted_difference", "ci_low", -1.18, 72),
            _row("cells vs sham", "intervention", "adjusted_difference", "ci_high", -0.26, 72),
            _row("cells vs sham", "intervention", "cohens_d", "value", 0.76, 72)]
    md = study_effect(rows, measure="md", higher_is_better=False)
    smd = study_effect(rows, measure="smd", higher_is_better=False)
    assert isinstance(md, Effect) and md.yi == pytest.approx(0.72) and md.basis == \
        "adjusted_difference"
    assert isinstance(smd, Effect) and smd.yi > 0 and smd.basis == "cohens_d"
    assert any("lower score is better" in note for note in md.notes)


def test_se_becomes_sd_and_means_without_dispersion_are_refused() -> None:
    rows = [_row("cells", "intervention", "change_from_baseline", "mean", 64.526, 19, "GMFM"),
            _row("cells", "intervention", "change_from_baseline", "se", 9.6, 19, "GMFM"),
            _row("control", "control", "change_from_baseline", "mean", 36.8, 20, "GMFM"),
            _row("control", "control", "change_from_baseline", "se", 8.802, 20, "GMFM")]
    effect = study_effect(rows, measure="md", higher_is_better=True)
    assert isinstance(effect, Effect)
    assert effect.vi == pytest.approx(9.6 ** 2 + 8.802 ** 2)  # (SE·√n)²/n per arm
    assert "SD = SE·√n" in effect.notes
    bare = study_effect([r for r in rows if r["statistic"] == "mean"], measure="md",
                        higher_is_better=True)
    assert isinstance(bare, Exclusion) and "without SD, SE or CI" in bare.reason


# -- kb meta on the built KB ----------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("meta") / "kb.db"
    build_kb(path)
    return path


def _meta(runner, built: Path, *args: str):
    return runner.invoke(cli, ["--db", str(built), "meta", *args])


def test_gmfm_at_12_months_pools_at_least_four_trials(built: Path, runner) -> None:
    result = _meta(runner, built, "--instrument", "GMFM", "--timepoint", "12", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    labels = {s["label"] for s in data["studies"]}
    assert len(labels) >= 4 and {"Amanat 2021", "Zarrabi 2022", "Huang 2018"} <= labels
    assert set(data["pooled"]) >= {"estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q",
                                   "method", "pi_low", "pi_high"}
    for study in data["studies"]:
        assert {"yi", "vi", "ci_low", "ci_high", "n_intervention", "n_control",
                "computed_from"} <= set(study) and study["sources"]
    amanat = next(s for s in data["studies"] if s["label"] == "Amanat 2021")
    assert amanat["yi"] == 8.07 and amanat["basis"] == "adjusted_difference"
    assert any("GMFM-66" in m and "GMFM (unspecified)" in m for m in data["mixes"])
    assert {s["label"]: s["reason"] for s in data["excluded"]}["Liu 2017"]
    again = pool([s["yi"] for s in data["studies"]], [s["vi"] for s in data["studies"]])
    assert again.estimate == data["pooled"]["estimate"]


def test_subgroups_and_pictures(built: Path, runner, tmp_path: Path) -> None:
    result = _meta(runner, built, "--instrument", "GMFM", "--timepoint", "12", "--measure", "smd",
                   "--by", "route", "--format", "json")
    data = json.loads(result.output)
    assert set(data["subgroups"]) == {"intrathecal", "intravenous"}
    assert data["subgroup_test"]["df"] == 1 and 0 <= data["subgroup_test"]["p"] <= 1
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("html", b"<!DOCTYPE html>")):
        out = tmp_path / f"forest.{fmt}"
        run = _meta(runner, built, "--instrument", "GMFM", "--timepoint", "12", "--format", fmt,
                    "--out", str(out))
        assert run.exit_code == 0, run.output
        assert out.read_bytes().startswith(magic)
    table = _meta(runner, built, "--instrument", "GMFM", "--timepoint", "12")
    assert "Amanat 2021 · UC-MSC · IT · n=72" in table.output and "τ²" in table.output
    csv_out = _meta(runner, built, "--instrument", "GMFM", "--timepoint", "12", "--format", "csv")
    assert csv_out.output.startswith("label,caption,cell_product,route,donor,yi,vi")


def test_too_few_studies_still_writes_the_one_that_enters(built: Path, runner) -> None:
    """One trial reports PEDI at 12 months: no pool (exit 1), but json and csv still give it."""
    as_json = _meta(runner, built, "--instrument", "PEDI", "--timepoint", "12", "--format", "json")
    assert as_json.exit_code == 1 and "at least 2 needed" in as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["pooled"] is None and [s["label"] for s in data["studies"]] == ["Amanat 2021"]
    as_csv = _meta(runner, built, "--instrument", "PEDI", "--timepoint", "12", "--format", "csv")
    assert as_csv.exit_code == 1
    lines = as_csv.stdout.splitlines()
    assert lines[0].startswith("label,caption,") and len(lines) == 2
    assert lines[1].startswith("Amanat 2021,")
    table = _meta(runner, built, "--instrument", "PEDI", "--timepoint", "12")
    assert table.exit_code == 1 and table.stdout == ""


def test_meta_bad_input_says_what_exists(built: Path, runner) -> None:
    before = hashlib.sha256(built.read_bytes()).hexdigest()
    unknown = _meta(runner, built, "--instrument", "Bayley", "--timepoint", "12")
    assert unknown.exit_code == 2 and "GMFM-66" in unknown.output
    when = _meta(runner, built, "--instrument", "GMFM", "--timepoint", "7")
    assert when.exit_code == 2 and "12" in when.output and "24" in when.output
    few = _meta(runner, built, "--instrument", "PEDI", "--timepoint", "12")
    assert few.exit_code == 1 and "Amanat 2021" in few.output and "at least 2" in few.output
    assert "Traceback" not in unknown.output + when.output + few.output
    assert hashlib.sha256(built.read_bytes()).hexdigest() == before


def _metafor(yi: list[float], vi: list[float], method: str) -> list[float]:
    script = (f"suppressMessages(library(metafor)); r <- rma(yi=c({','.join(map(repr, yi))}), "
              f"vi=c({','.join(map(repr, vi))}), method='{method}'); "
              "cat(sprintf('%.10f', c(r$beta, r$ci.lb, r$ci.ub, r$tau2)))")
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, timeout=60,
                         check=True)
    return [float(x) for x in out.stdout.split()]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed")
@pytest.mark.parametrize("measure", ["md", "smd"])
def test_kb_meta_equals_metafor_rma_pm(built: Path, runner, measure: str) -> None:
    if subprocess.run(["Rscript", "-e", "library(metafor)"], capture_output=True).returncode:
        pytest.skip("metafor is not installed")
    data = json.loads(_meta(runner, built, "--instrument", "GMFM", "--timepoint", "12",
                            "--measure", measure, "--format", "json").output)
    yi = [s["yi"] for s in data["studies"]]
    vi = [s["vi"] for s in data["studies"]]
    pooled = data["pooled"]
    assert [pooled["estimate"], pooled["ci_low"], pooled["ci_high"], pooled["tau2"]] == \
        pytest.approx(_metafor(yi, vi, "PM"), abs=1e-4)
    dl = pool(yi, vi, method="dl")
    assert [dl.estimate, dl.ci_low, dl.ci_high, dl.tau2] == pytest.approx(
        _metafor(yi, vi, "DL"), abs=1e-4)


def test_an_arm_that_gives_no_cells_is_left_out_and_missing_arm_sizes_split_the_trial() -> None:
    rows = [_row(arm, role, "change_from_baseline", stat, value, None, "GMFM")
            for arm, role, mean, sd in (("pUCB (UCB + rhEPO)", "intervention", 9.1, 6.7),
                                        ("EPO (rhEPO + placebo UCB)", "intervention", 9.0, 6.3),
                                        ("Control (placebo UCB + placebo rhEPO)", "control", 7.8,
                                         5.1))
            for stat, value in (("mean", mean), ("sd", sd))]
    effect = study_effect(rows, measure="md", higher_is_better=True,
                          arms=[{"name": "pUCB (UCB + rhEPO)", "n": 31},
                                {"name": "EPO (rhEPO + placebo UCB)", "n": 33},
                                {"name": "Control (placebo UCB + placebo rhEPO)", "n": 32}])
    assert isinstance(effect, Effect) and effect.yi == pytest.approx(1.3)
    assert (effect.n_intervention, effect.n_control) == (31, 32)
    assert any("'EPO (rhEPO + placebo UCB)' left out" in note for note in effect.notes)
    halves = study_effect([r for r in rows if not r["arm"].startswith("EPO")], measure="smd",
                          higher_is_better=True, total=36)
    assert isinstance(halves, Effect) and (halves.n_intervention, halves.n_control) == (18, 18)
    unsized = study_effect(rows[:2] + rows[4:], measure="smd", higher_is_better=True)
    assert unsized.reason.startswith("per-arm means and dispersion, but no arm sizes")


def test_out_never_overwrites_the_knowledge_base(built: Path, runner) -> None:
    before = hashlib.sha256(built.read_bytes()).hexdigest()
    for command in (["meta", "--instrument", "GMFM", "--timepoint", "12"], ["outcomes"]):
        result = runner.invoke(cli, ["--db", str(built), *command, "--format", "csv",
                                     "--out", str(built)])
        assert result.exit_code == 2 and "refusing to write" in result.output
    assert hashlib.sha256(built.read_bytes()).hexdigest() == before

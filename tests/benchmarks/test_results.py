"""benchmarks/results/ holds one current CSV (and PNG) per benchmark script, and the scripts'
writers keep it that way: a run replaces the rows of the variant it measured and keeps the rest."""

import csv
import re
from pathlib import Path

import pytest

from benchmarks.common import QUICK_RESULTS, RESULTS, base_parser, read_csv_rows, write_csv
from benchmarks.scenarios import summarize

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
NOT_BENCHMARKS = {
    "__init__",
    "common",
    "datasets",
    "peers",
    "pretrain_split",
    "suite_metrics",
    "suite_models",
}  # helpers, no result of their own


def _scripts() -> dict[str, str]:
    return {
        p.stem: p.read_text() for p in sorted(BENCH.glob("*.py")) if p.stem not in NOT_BENCHMARKS
    }


def _written_names(source: str) -> set[str]:
    """Result names a script passes to finish(NAME, ...) or write_csv(OUT, NAME, ...)."""
    pat = r"""(?:finish\(\s*|write_csv\(\s*[\w.]+,\s*)["']([a-z_0-9]+)["']"""
    return set(re.findall(pat, source))


def test_every_result_file_is_the_one_output_of_a_benchmark_script():
    scripts = _scripts()
    written = {name: _written_names(src) for name, src in scripts.items()}
    # each script writes exactly one result, named after itself
    assert written == {name: {name} for name in scripts}
    csvs = {p.stem for p in RESULTS.glob("*.csv")}
    assert csvs == set(scripts), "a CSV without its script, or a script without its CSV"
    # a picture belongs to a benchmark's CSV; nothing else lives in results/
    assert {p.stem for p in RESULTS.glob("*.png")} <= csvs
    assert {p.suffix for p in RESULTS.iterdir()} <= {".csv", ".png"}


def test_scripts_run_as_modules_only():
    for name, src in _scripts().items():
        assert "sys.path" not in src, name
        assert re.search(
            r'if __name__ == "__main__":\n    (raise SystemExit|sys\.exit)\(main\(\)\)', src
        ), name
        assert f"python benchmarks/{name}.py" not in src and "bin/python benchmarks/" not in src


def test_write_csv_with_a_key_replaces_only_the_variants_this_run_measured(tmp_path):
    write_csv(tmp_path, "b", [{"task": "a", "x": 1}, {"task": "b", "x": 2}], {"date": "d0"})
    path = write_csv(tmp_path, "b", [{"task": "b", "x": 3, "y": 9}], {"date": "d1"}, key=("task",))
    columns, rows = read_csv_rows(path)
    assert columns == ["task", "x", "date", "y"]  # the existing order first, new columns after
    assert rows == [
        {"task": "a", "x": "1", "date": "d0", "y": ""},  # kept as it was
        {"task": "b", "x": "3", "date": "d1", "y": "9"},  # the re-measured variant
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["b.csv"]  # no temporary file left
    # without a key the file holds exactly the new rows
    write_csv(tmp_path, "b", [{"task": "c", "x": 4}])
    assert read_csv_rows(path)[1] == [{"task": "c", "x": "4"}]
    with pytest.raises(ValueError, match="key column"):
        write_csv(tmp_path, "b", [{"x": 5}], key=("task",))


def test_quick_runs_do_not_write_into_the_committed_results(tmp_path):
    ap = base_parser("test")
    assert ap.parse_args([]).out == RESULTS
    assert ap.parse_args(["--quick"]).out == QUICK_RESULTS
    assert QUICK_RESULTS.resolve() != RESULTS.resolve()
    assert ap.parse_args(["--quick", "--out", str(tmp_path)]).out == tmp_path


def test_scenarios_summary_rows_are_the_mean_of_the_variant_seeds(tmp_path):
    committed = read_csv_rows(RESULTS / "scenarios.csv")[1]
    (tmp_path / "scenarios.csv").write_text((RESULTS / "scenarios.csv").read_text())
    variants = sorted({r["variant"] for r in committed if r["seed"] == "mean"})
    assert "default" in variants
    for variant in variants:
        summarize(variant, tmp_path)
    again = read_csv_rows(tmp_path / "scenarios.csv")[1]
    assert len(again) == len(committed)  # the mean rows were replaced, not added
    for old in (r for r in committed if r["seed"] == "mean"):
        new = next(r for r in again if r["seed"] == "mean" and all(
            r[k] == old[k] for k in ("variant", "horizon", "paths")))  # fmt: skip
        for k in ("seeds", "effect_err", "effect_err_sd", "cov90", "crps_ratio"):
            assert float(new[k]) == pytest.approx(float(old[k]), rel=1e-9, nan_ok=True), (
                old["variant"],
                k,
            )


def test_summarize_names_an_unknown_variant_in_one_line(tmp_path):
    (tmp_path / "scenarios.csv").write_text((RESULTS / "scenarios.csv").read_text())
    with pytest.raises(SystemExit, match="no per-seed rows of that variant"):
        summarize("nope", tmp_path)


def test_results_csvs_parse_with_one_header_and_full_rows():
    for path in RESULTS.glob("*.csv"):
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        assert rows and all(len(r) == len(rows[0]) for r in rows), path.name

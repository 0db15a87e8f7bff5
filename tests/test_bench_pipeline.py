"""bench/pipeline.py --repeat: which run is reported, and the spread recorded with it."""

from __future__ import annotations

import pytest

from bench.pipeline import changed_paths, main, median_run, spread


def _run(tag: str, bronze: float, silver: float, gold: float, cpu: float = 1.0) -> dict:
    return {"engine": "sail-delta", "tag": tag,
            **{layer: {"wall_s": wall, "cpu_s": cpu} for layer, wall in
               (("bronze", bronze), ("silver", silver), ("gold", gold))}}


def test_the_median_run_is_chosen_by_pipeline_wall_time_not_by_any_one_layer():
    runs = [_run("a", 10, 50, 20), _run("b", 30, 30, 30), _run("c", 5, 40, 10)]  # pipelines 80, 90, 55
    assert median_run(runs)["tag"] == "a"
    assert median_run(runs[:2])["tag"] == "a"  # an even count: the lower of the two middle runs
    assert median_run([{"engine": "x", "error": "exit 1"}, runs[1]])["tag"] == "b"  # a failed run is left out
    assert median_run([{"engine": "x", "error": "exit 1"}]) == {"engine": "x", "error": "exit 1"}


def test_spread_keeps_every_run_and_the_median_minimum_and_maximum():
    runs = [_run("a", 10, 50, 20, cpu=2), _run("b", 30, 30, 30, cpu=4), {"engine": "x", "error": "exit 1"},
            _run("c", 5, 40, 10, cpu=3)]
    sp = spread(runs)
    assert (sp["runs"], sp["failed"]) == (4, 1)
    assert sp["bronze"] == {"wall_s": [10, 30, 5], "cpu_s": [2, 4, 3], "median_wall_s": 10, "min_wall_s": 5,
                            "max_wall_s": 30, "median_cpu_s": 3}
    assert sp["pipeline"]["wall_s"] == [80, 90, 55]
    assert (sp["pipeline"]["median_wall_s"], sp["pipeline"]["median_cpu_s"]) == (80, 9)
    assert spread(runs[:2])["silver"]["median_wall_s"] == 40  # an even count: the mean of the middle two
    assert spread([{"engine": "x", "error": "exit 1"}]) == {"runs": 1, "failed": 1}


def test_repeat_must_be_at_least_one_and_is_refused_before_any_folder_is_made(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main(["--repeat", "0", "--engines", "sail-delta"])
    assert exc.value.code == 2
    assert "--repeat must be at least 1, got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_changed_paths_keep_the_first_letter_of_a_path_whose_status_starts_with_a_space():
    porcelain = " M lakehouse/spark.py\nM  flows/refine.py\n?? transforms/new.py\nR  flows/a.py -> flows/b.py\n"
    assert changed_paths(porcelain) == ["lakehouse/spark.py", "flows/refine.py", "transforms/new.py", "flows/b.py"]
    assert changed_paths("") == []

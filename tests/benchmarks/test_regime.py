"""The regime map's plan (datasets, variants, widths) and its verdicts, without training."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import regime as R  # noqa: E402
from accuracy import regime_report as RR  # noqa: E402


def test_plan_has_each_dataset_and_variant_at_the_map_input_length(tmp_path):
    scale = R.regime_scale("smoke")
    plan, datasets = R.build_plan(scale, [0, 1], tmp_path, "cpu", 1)
    keys = [d.job.key for d in datasets]
    assert keys == ["symmetric", "settling@0.3", "breaking_sweep@1", "rotation"]
    assert [d.shows for d in datasets] == ["—", "hidden", "shown", "shown"]
    assert [d.in_map for d in datasets] == [True, True, True, False]
    settle = datasets[1].job
    assert settle.scenario == "settling" and settle.params["settling_speed"] == 0.3
    labels = {(t.data_key, t.label, t.seed) for t in plan.tasks}
    # the map: 3 datasets x 4 variants x 2 seeds (no steerable pair at smoke); the D4
    # rows (strict, relaxed, relaxed at the strict D4 width) on the twin and settling, every
    # seed; the discovery runs on rotation (plain and relaxed D4), seed 0
    assert len(labels) == len(plan.tasks) == 3 * 4 * 2 + 2 * 3 * 2 + 2
    d4 = sorted({(t.data_key, t.label) for t in plan.tasks if "D4" in t.label})
    assert d4 == [("rotation", "relaxed gconv D4"),
                  *[(k, lab) for k in ("settling@0.3", "symmetric") for lab in
                    ("relaxed gconv D4", "relaxed gconv D4 @ strict width", "strict gconv D4")]]
    assert all(t.model_config.get("group") == "D4" for t in plan.tasks if "D4" in t.label)
    assert {t.seed for t in plan.tasks if t.data_key == "rotation"} == {0}
    d4w = {t.label: t for t in plan.tasks if t.data_key == "settling@0.3" and t.seed == 1
           and "D4" in t.label}
    assert d4w["relaxed gconv D4 @ strict width"].hidden == d4w["strict gconv D4"].hidden
    assert d4w["relaxed gconv D4"].hidden <= d4w["strict gconv D4"].hidden
    by = {(t.data_key, t.label): t for t in plan.tasks if t.seed == 0}
    wide = by[("settling@0.3", "relaxed gconv @ strict width")]
    strict = by[("settling@0.3", "strict gconv")]
    assert wide.hidden == strict.hidden and wide.params > strict.params
    assert by[("settling@0.3", "relaxed gconv")].hidden <= strict.hidden
    assert all(t.train["T_in"] == scale["regime"]["T_in"] == 1 for t in plan.tasks)
    # the sweep level of the map uses the same base buoyancy as its symmetric twin
    assert datasets[2].job.params["base_buoyancy"] == scale["sweep"].get("base_buoyancy", 0.01)


def _result(key, label, seed, dom_all, dom_vel=1.0, fut_all=1.0):
    sc = lambda a, v: {"rmse": a, "rmse_velocity": v, "rmse_density": a}  # noqa: E731
    return {"key": f"{key}{label}{seed}", "data_key": key, "label": label, "seed": seed,
            "scores": {"test-domain": sc(dom_all, dom_vel), "test-future": sc(fut_all, 1.0)}}


def test_ratios_and_verdicts_follow_the_seeds_spread():
    base = {"d": {c: {"test-domain": 2.0, "test-future": 1.0} for c in R.METRICS}}
    res = ([_result("d", "strict gconv", s, v) for s, v in enumerate([1.0, 1.1, 1.2])]
           + [_result("d", "plain", s, v) for s, v in enumerate([0.9, 1.3, 1.5])]
           + [_result("d", RR.RELAXED, s, v, fut_all=1.5) for s, v in enumerate([0.7, 0.8, 0.9])]
           + [{"error": "boom", "data_key": "d", "label": "x", "seed": 0}])
    rat = R.ratios(res, base)
    assert rat[("d", "strict gconv")]["test-domain"]["all"] == [0.5, 0.55, 0.6]
    lines = RR.verdict(rat, "d")
    assert "vs strict gconv, test-domain: all -0.150 (beyond the spread)" in lines[0]
    assert "vs plain" in lines[1] and "(within the spread)" in lines[1]   # 0.9 overlaps 0.9
    assert lines[2].endswith("test-future all, test-future density")
    table = RR.dataset_table(rat, "d", {RR.RELAXED: 99})
    assert table[0].startswith("| model | params | test-domain all")
    assert any(r.startswith(f"| {RR.RELAXED} | 99 | **0.400 ± 0.050**") for r in table)


def test_best_relaxed_is_judged_against_the_best_strict_of_any_group():
    base = {"d": {c: {"test-domain": 1.0, "test-future": 1.0} for c in R.METRICS}}
    res = ([_result("d", "strict gconv", s, v) for s, v in enumerate([0.5, 0.6, 0.7])]
           + [_result("d", RR.STRICT_STEER_D4, s, v) for s, v in enumerate([0.30, 0.32, 0.34])]
           + [_result("d", RR.RELAXED, s, v) for s, v in enumerate([0.35, 0.36, 0.4])]
           + [_result("d", RR.RELAXED_STEER_D4, s, v) for s, v in enumerate([0.2, 0.25, 0.33])])
    rat = R.ratios(res, base)
    [line] = RR.best_of_each(rat, "d")
    assert f"best relaxed ({RR.RELAXED_STEER_D4}, 0.260)" in line
    assert f"best strict ({RR.STRICT_STEER_D4}, 0.320)" in line
    assert line.endswith("within the spread")            # 0.33 > 0.30: the seeds overlap
    rat[("d", RR.RELAXED_STEER_D4)]["test-domain"]["all"] = [0.2, 0.25, 0.29]
    assert RR.best_of_each(rat, "d")[0].endswith("better beyond the spread")
    assert RR.best_of_each({k: v for k, v in rat.items() if "relaxed" not in k[1]}, "d") == []


def test_one_seed_is_never_beyond_the_spread():
    assert not R.separated([0.1], [0.9])
    assert R.separated([0.1, 0.2], [0.3, 0.9]) and not R.separated([0.1, 0.4], [0.3, 0.9])


def test_cpu_map_has_a_strength_axis_for_the_hidden_breaking(tmp_path):
    """Two settling speeds; the D4 pair (strict, relaxed at its width) runs on both."""
    scale = R.regime_scale("cpu")
    plan, datasets = R.build_plan(scale, [0, 1, 2], tmp_path, "cpu", 1)
    hidden = [(d.job.key, d.strength) for d in datasets
              if d.shows == "hidden" and d.held_out == "runs"]
    assert hidden == [("settling@0.3", 0.3), ("settling@0.6", 0.6)]
    fast = next(d.job for d in datasets if d.job.key == "settling@0.6")
    assert fast.params["settling_speed"] == 0.6
    d4 = {(t.label, t.seed) for t in plan.tasks if t.data_key == "settling@0.6" and "D4" in t.label}
    assert d4 == {(lab, s) for lab in ("strict gconv D4", "relaxed gconv D4 @ strict width")
                  for s in (0, 1, 2)}
    c4 = {t.label for t in plan.tasks if t.data_key == "settling@0.6" and "D4" not in t.label}
    assert c4 == {"plain", "strict gconv", "relaxed gconv", "relaxed gconv @ strict width"}


def test_only_keeps_the_named_datasets_and_runs(tmp_path):
    scale = R.regime_scale("cpu")
    pair = ["settling@0.6/strict gconv D4", "settling@0.6/relaxed gconv D4 @ strict width"]
    plan, datasets = R.build_plan(scale, [0, 1, 2], tmp_path, "cpu", 1, pair)
    assert [d.job.key for d in datasets] == ["settling@0.6"]
    assert sorted({t.label for t in plan.tasks}) == sorted(p.split("/")[1] for p in pair)
    assert len(plan.tasks) == 6
    # a dataset named alone keeps all of its runs, even beside one of its labels
    plan, _ = R.build_plan(scale, [0], tmp_path, "cpu", 1, ["symmetric", "symmetric/plain"])
    assert len({t.label for t in plan.tasks}) == 7
    for bad, says in (["bogus"], "no dataset 'bogus'"), (["symmetric/nope"], "no run labelled"):
        try:
            R.build_plan(scale, [0], tmp_path, "cpu", 1, bad)
        except ValueError as e:
            assert says in str(e)
        else:
            raise AssertionError(f"{bad} accepted")


def test_another_budget_or_a_part_never_writes_over_the_map(tmp_path, monkeypatch):
    """``--epochs`` gets its own cache (a changed run key would retrain the map's runs in
    place), and a partial map reports under its work folder."""
    import bench_regime as B
    results = ROOT / "benchmarks" / "results" / "regime"
    assert B.paths(B.parse([])) == (R.default_work("cpu"), results)
    assert R.default_work("cpu").name == "regime-cpu"
    for argv in (["--epochs", "30"], ["--only", "symmetric"]):
        work, out = B.paths(B.parse(argv))
        assert out == work / "results" and out != results
    assert B.paths(B.parse(["--epochs", "30"]))[0].name == "regime-cpu-e30"
    seen = {}
    monkeypatch.setattr(R, "log_plan", lambda plan, datasets, scale: seen.update(
        tasks=plan.tasks, epochs=scale["train"]["epochs"]))
    assert B.main(["--epochs", "30", "--only", "symmetric/plain", "--dry-run"]) == 0
    assert seen["epochs"] == 30
    assert {Path(t.out).parts[-5] for t in seen["tasks"]} == {"regime-cpu-e30"}
    for bad in (["--epochs", "0"], ["--only", "nowhere"]):
        try:
            B.main([*bad, "--dry-run"])
        except SystemExit as e:
            assert str(e.code).startswith("error: ")
        else:
            raise AssertionError(f"{bad} accepted")


def test_cpu_map_holds_out_whole_magnitudes_on_the_twin_and_faster_settling(tmp_path):
    """The magnitude split: the plain model and the D4 pairs (group conv, steerable),
    every seed; the C4 pair on settling only."""
    scale = R.regime_scale("cpu")
    plan, datasets = R.build_plan(scale, [0, 1, 2], tmp_path, "cpu", 1)
    mag = {d.job.key: d for d in datasets if d.held_out == "magnitudes"}
    assert sorted(mag) == ["settling@0.6~magnitudes", "symmetric~magnitudes"]
    assert mag["settling@0.6~magnitudes"].job.params["settling_speed"] == 0.6
    assert mag["settling@0.6~magnitudes"].shows == "hidden"
    assert all(d.job.params["held_out"] == "magnitudes" and d.job.path.endswith(
        "_magnitudes.nc") for d in mag.values())
    runs = {(t.data_key, t.label, t.seed) for t in plan.tasks if t.data_key in mag}
    c4 = ("strict gconv", "relaxed gconv @ strict width")
    assert runs == {(k, lab, s) for k in mag for s in (0, 1, 2) for lab in
                    ("plain", "strict gconv D4", "relaxed gconv D4 @ strict width",
                     "strict steer D4", "relaxed steer D4 @ strict width")} | {
        ("settling@0.6~magnitudes", lab, s) for lab in c4 for s in (0, 1, 2)}
    # the map's own datasets keep their default split (and their cached runs)
    assert all("held_out" not in d.job.params for d in datasets if d.job.key not in mag)


def test_figure_gives_each_model_one_colour_in_every_column():
    rat = {("a", "plain"): {}, ("a", "strict gconv D4"): {}, ("b", "strict gconv D4"): {},
           ("b", RR.RELAXED): {}}
    colours = RR.model_colors(rat, ["c0", "c1", "c2"])
    # map order, not a column's position: strict D4 is the same colour in both columns
    assert colours == {"plain": "c0", RR.RELAXED: "c1", "strict gconv D4": "c2"}


def test_a_magnitude_split_of_an_unmapped_speed_is_one_clear_error(tmp_path):
    scale = R.regime_scale("cpu")
    scale["regime"]["held_out_magnitudes"] = [0.9]
    try:
        R.regime_data(scale, tmp_path)
    except ValueError as e:
        assert "0.9 is not one of the map's settling_speeds" in str(e)
    else:
        raise AssertionError("an unmapped speed accepted")


def test_cpu_map_has_the_stirred_drift_and_its_twin_with_the_d4_pair_and_plain(tmp_path):
    """``drift``: no frame shows the settling direction; the twin at speed 0; plain and the
    group-conv D4 pair at the strict width, every seed, whole starts held out; the
    strict steerable D4 net on the settling one."""
    scale = R.regime_scale("cpu")
    plan, datasets = R.build_plan(scale, [0, 1, 2], tmp_path, "cpu", 1)
    drift = {d.job.key: d for d in datasets if d.job.scenario == "drift"}
    assert sorted(drift) == ["drift@0", "drift@0.6"]
    assert [drift[k].shows for k in ("drift@0", "drift@0.6")] == ["—", "unseen"]
    assert drift["drift@0.6"].job.params["settling_speed"] == 0.6
    assert drift["drift@0"].job.params["settling_speed"] == 0.0
    assert all(d.held_out == "patterns" and d.in_map for d in drift.values())
    runs = {(t.data_key, t.label, t.seed) for t in plan.tasks if t.data_key in drift}
    assert runs == {(k, lab, s) for k in drift for s in (0, 1, 2) for lab in
                    ("plain", "strict gconv D4", "relaxed gconv D4 @ strict width")} | {
        ("drift@0.6", "strict steer D4", s) for s in (0, 1, 2)}
    by = {t.label: t for t in plan.tasks if t.data_key == "drift@0.6" and t.seed == 0}
    assert by["relaxed gconv D4 @ strict width"].hidden == by["strict gconv D4"].hidden


def test_probe_results_are_kept_beside_the_dataset_and_redone_when_it_changes(
        tmp_path, monkeypatch):
    import simulate
    import evaluate.observability as obs
    calls = []

    def fake(ds, frames, invariant=False):
        calls.append(invariant)
        return obs.ObservabilityResult("cause", 3, 1, frame={2: 0.5})
    monkeypatch.setattr(obs, "observability", fake)
    path = tmp_path / "d.nc"
    spec = simulate.preset("drift", resolution=16, n_patterns=4, steps=4, save_every=2)
    simulate.generate(spec, path, progress=False)
    job = R.DataJob("drift@0.6", "drift", {}, str(path), 0.6)
    data = [R.RegimeData(job, 0.6, "unseen", held_out="patterns")]
    first = R.probe(data)
    assert calls == [True] and path.with_suffix(".probe.json").is_file()
    assert first["drift@0.6"]["data_equivariance_error"] < 1e-5       # velocity: D4 exactly
    assert first["drift@0.6"]["data_equivariance_error_density"] > 0.01
    assert R.probe(data) == first and calls == [True]                 # reused
    import time
    time.sleep(1.1)                                 # the dataset's time stamp is in seconds
    simulate.generate(spec, path, progress=False, overwrite=True)
    R.probe(data)
    assert calls == [True, True]                    # made again, same spec: redone

"""The evaluate CLI and evaluate.run: files written, pictures with content, bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg
from PIL import Image

import evaluate
from evaluate.cli import main

from evaluate_helpers import T_IN, make_dataset

STEPS = 4


@pytest.fixture(scope="module")
def cli_run(tiny_data, tiny_checkpoints, tmp_path_factory):
    data, _ = tiny_data
    out = tmp_path_factory.mktemp("evalout") / "cmp"
    rc = main(["--checkpoint", str(tiny_checkpoints["unet"]),
               str(tiny_checkpoints["relaxed_gconv_unet"]), "--data", str(data),
               "--split", "test-future", "--split", "test-domain", "--steps", str(STEPS),
               "--max-windows", "6", "--equivariance-windows", "2", "--device", "cpu",
               "--out", str(out), "--quiet"])
    return rc, out


def test_cli_writes_csv(cli_run):
    rc, out = cli_run
    assert rc == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * STEPS  # two models and persistence
    assert {r["model"] for r in rows} == {"unet", "relaxed_gconv_unet", "persistence"}
    assert {r["split"] for r in rows} == {"test-future", "test-domain"}
    for r in rows:
        assert 1 <= int(r["step"]) <= STEPS
        assert float(r["lead_time"]) == pytest.approx(0.5 * int(r["step"]))
        assert int(r["n_windows"]) == 6
        for k in ("rmse", "rmse_velocity", "vrmse", "corr", "spectrum_error", "div_pred",
                  "rmse_density"):
            assert np.isfinite(float(r[k])), k
        assert float(r["rmse"]) > 0


def test_cli_writes_summary_table(cli_run):
    _, out = cli_run
    md = (out / "summary.md").read_text()
    assert "| model | test-future | vs persistence | test-domain | vs persistence |" in md
    for label in ("unet", "relaxed_gconv_unet", "persistence"):
        assert any(line.startswith(f"| {label} |") and line.count("±") == 2
                   for line in md.splitlines()), label
    assert any(line.startswith("| persistence |") and "1 (reference)" in line
               for line in md.splitlines())
    assert "Data equivariance error" in md and "Model equivariance error" in md
    assert "what symmetry the model discovered" in md
    summary = json.loads((out / "summary.json").read_text())
    models = {m["label"]: m for m in summary["models"]}
    # the equivariant-at-heart model is still equivariant only where its weights say so
    assert models["unet"]["equivariance_error"]["test-domain"]["mean"] > 1e-2
    assert models["relaxed_gconv_unet"]["relaxation"]
    assert models["relaxed_gconv_unet"]["equivariance_error"]["test-domain"]["mean"] > 1e-4
    # every model is judged against persistence on its own windows
    pers = models["persistence"]
    assert pers["baseline"] and not models["unet"]["baseline"]
    for label in ("unet", "relaxed_gconv_unet"):
        for split in ("test-future", "test-domain"):
            ratio = models[label]["vs_persistence"][split]["rmse"]
            own = models[label]["splits"][split]["rmse"]
            assert ratio == pytest.approx(own / pers["splits"][split]["rmse"])


def test_persistence_rows_are_the_last_frame_repeated(cli_run, tiny_data):
    """The persistence rows of metrics.csv equal the RMSE of repeating the last history
    frame, recomputed here from the data with numpy."""
    _, out = cli_run
    data, _ = tiny_data
    summary = json.loads((out / "summary.json").read_text())
    models = {m["label"]: m for m in summary["models"]}
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == "persistence"
                and r["split"] == "test-domain"]
    windows = evaluate.build_windows(_metadata(models["unet"]["checkpoint"]), "test-domain",
                                     evaluate.open_data(data), T_IN, STEPS, max_windows=6)
    ds = evaluate.open_data(data)
    arr = np.stack([ds[v].values for v in ("u", "v", "density")], axis=2)  # (S, T, C, H, W)
    for step in range(1, STEPS + 1):
        last = T_IN - 1
        errs = [np.sqrt(np.mean((arr[s, t + last] - arr[s, t + last + step]) ** 2))
                for s, t in zip(windows.sims, windows.starts)]
        row = next(r for r in rows if int(r["step"]) == step)
        assert float(row["rmse"]) == pytest.approx(np.mean(errs), rel=1e-4)


def _metadata(checkpoint):
    from surrogate.checkpoint import read_checkpoint
    return read_checkpoint(checkpoint)["metadata"]


def _check_png(path, min_size=150):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_size and img.shape[1] >= min_size
    rgb = img[..., :3]
    assert rgb.std() > 0.02, f"{path.name} looks blank"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50, f"{path.name}: too few colours"


def test_cli_writes_valid_pngs_and_gif(cli_run):
    _, out = cli_run
    pngs = sorted(out.glob("*.png"))
    names = {p.name for p in pngs}
    for split in ("test-future", "test-domain"):
        assert f"rmse_vs_step_{split}.png" in names
        assert f"rollout_{split}_compare.png" in names
    assert "relaxation_relaxed_gconv_unet.png" in names
    for p in pngs:
        _check_png(p)
    gifs = sorted(out.glob("*.gif"))
    assert len(gifs) == 4
    with Image.open(gifs[0]) as im:
        assert im.n_frames == STEPS
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB"), dtype=float))
    assert frames[0].std() > 5 and np.abs(frames[-1] - frames[0]).max() > 0


def test_run_from_python(tiny_data, tiny_checkpoints, tmp_path):
    data, _ = tiny_data
    out = evaluate.run(tiny_checkpoints["unet"], data, splits="all", steps=2,
                       out=tmp_path / "r", device="cpu", stride=8, figures=False)
    assert out == tmp_path / "r"
    assert (out / "metrics.csv").is_file() and (out / "summary.md").is_file()
    assert not list(out.glob("*.png"))
    with pytest.raises(evaluate.EvaluationError, match="unknown split"):
        evaluate.run(tiny_checkpoints["unet"], data, splits="nope", out=tmp_path / "x")


def _bad(args, capsys):
    rc = main(args + ["--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "error" in err
    return err


def test_cli_bad_input(tiny_data, tiny_checkpoints, tmp_path, capsys):
    data, _ = tiny_data
    ck = str(tiny_checkpoints["unet"])
    out = str(tmp_path / "o")
    assert "no such checkpoint" in _bad(["-c", str(tmp_path / "x.pt"), "-d", str(data),
                                         "-o", out], capsys)
    assert "unknown split" in _bad(["-c", ck, "-d", str(data), "-s", "later", "-o", out],
                                   capsys)
    assert "steps" in _bad(["-c", ck, "-d", str(data), "--steps", "0", "-o", out], capsys)
    assert "no such data file" in _bad(["-c", ck, "-d", str(tmp_path / "n.nc"), "-o", out],
                                       capsys)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file")
    _bad(["-c", ck, "-d", str(junk), "-o", out], capsys)
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"\x00" * 64)
    assert "checkpoint" in _bad(["-c", str(fake), "-d", str(data), "-o", out], capsys)
    small = tmp_path / "small.nc"
    make_dataset(n_sims=3).to_netcdf(small)
    assert "simulations" in _bad(["-c", ck, "-d", str(small), "-s", "test-domain",
                                  "-o", out], capsys)
    other_grid = tmp_path / "grid.nc"
    make_dataset(n=8).to_netcdf(other_grid)
    assert "grid" in _bad(["-c", ck, "-d", str(other_grid), "-o", out], capsys)
    assert not (tmp_path / "o").exists()


def test_module_entry_point_usage_error():
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "evaluate", "--data", "x.nc"], cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--checkpoint" in r.stderr


def test_summary_marks_censored_correlation_times(cli_run):
    """A mean correlation time over windows of which some never dropped below the
    threshold is a lower bound: the table says so, with the censored share."""
    _, out = cli_run
    md = (out / "summary.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    for m in summary["models"]:
        for split, r in m["splits"].items():
            section = md.split(f"## {split}\n")[1].split("\n## ")[0]
            row = next(l for l in section.splitlines() if l.startswith(f"| {m['label']} |"))
            cens = r["corr_time_censored"]
            if cens >= 1:
                assert "(≥, censored)" in row
            elif cens > 0:
                assert f"(≥; {cens:.0%} censored)" in row
            else:
                assert "censored" not in row


def test_report_gives_a_combo_nets_learned_weights_and_draws_no_empty_figure(tiny_data,
                                                                            tmp_path):
    from evaluate_helpers import make_checkpoint
    data, ds = tiny_data
    ckpt = make_checkpoint(tmp_path / "combo" / "best.pt", "combo_unet", ds, seed=2)
    out = evaluate.run(ckpt, data, splits="test-domain", steps=2, out=tmp_path / "r",
                       device="cpu", stride=8)
    md = (out / "summary.md").read_text()
    assert "| combo_weights | combo | 0.5 |" in md and "w_p 0.5, w_e 0.5" in md
    assert not list(out.glob("relaxation_*.png"))
    assert list(out.glob("rmse_vs_step_*.png"))


def test_per_simulation_ratios_add_up_and_name_the_hard_runs(cli_run, tiny_data):
    """summary.json's per-simulation rows: their windows add up to the split's, their
    window-weighted RMSE is the split's, and each ratio divides by persistence's RMSE
    on that simulation's windows (recomputed here from the data)."""
    _, out = cli_run
    data, _ = tiny_data
    summary = json.loads((out / "summary.json").read_text())
    models = {m["label"]: m for m in summary["models"]}
    ds = evaluate.open_data(data)
    arr = np.stack([ds[v].values for v in ("u", "v", "density")], axis=2)  # (S, T, C, H, W)
    md = (out / "summary.md").read_text()
    for split in ("test-future", "test-domain"):
        windows = evaluate.build_windows(_metadata(models["unet"]["checkpoint"]), split, ds,
                                         T_IN, STEPS, max_windows=6)
        pers = {}
        for s, t in zip(windows.sims, windows.starts):
            last = arr[s, t + T_IN - 1]
            err = np.sqrt(np.mean((arr[s, t + T_IN:t + T_IN + STEPS] - last) ** 2))
            pers.setdefault(int(s), []).append(err)
        for label in ("unet", "relaxed_gconv_unet"):
            rows = models[label]["per_simulation"][split]
            assert {r["sim"] for r in rows} == set(pers)
            assert sum(r["n_windows"] for r in rows) == len(windows)
            mean = sum(r["rmse"] * r["n_windows"] for r in rows) / len(windows)
            assert mean == pytest.approx(models[label]["splits"][split]["rmse"], rel=1e-9)
            for r in rows:
                assert r["vs_persistence"]["rmse"] == pytest.approx(
                    r["rmse"] / np.mean(pers[r["sim"]]), rel=1e-4)
            ratios = [r["vs_persistence"]["rmse"] for r in rows]
            assert ratios == sorted(ratios, reverse=True)        # the hardest first
        if len(pers) > 1:
            worst = models["unet"]["per_simulation"][split][0]
            table = md[md.index(f"## {split}"):].split("Per simulation", 1)[1]
            assert f"| {worst['sim']} (" in table.split("\n\n")[1]
    assert md.count("Per simulation (") >= 1       # the tiny data's test-domain has 2+
    assert models["persistence"]["per_simulation"] == {}


def test_sim_labels_name_the_coordinates_that_vary():
    import xarray as xr
    from evaluate.report import sim_labels
    ds = xr.Dataset(coords={"sim": [10, 11, 12], "inflow_x": ("sim", [1.0, 2.5, np.nan]),
                            "wall": ("sim", [0, 0, 0]), "heldout": ("sim", [True, False, True]),
                            "magnitude_index": ("sim", [0, 1, 2]),
                            "level": ("sim", [np.nan, np.nan, np.nan])})
    # keyed by position along sim (as windows index simulations), constant / all-NaN /
    # boolean coordinates left out
    assert sim_labels(ds) == {0: "inflow_x 1, magnitude_index 0",
                              1: "inflow_x 2.5, magnitude_index 1",
                              2: "inflow_x nan, magnitude_index 2"}
    assert sim_labels(ds, most=1)[1] == "inflow_x 2.5"


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown device 'gpu'; accepted: auto, cpu, cuda or cuda:N"),
    pytest.param("cuda", "cuda requested but torch sees no CUDA device",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(),
                                          reason="has CUDA")),
])
def test_device_names_are_the_shared_set(tiny_data, tiny_checkpoints, tmp_path, capsys,
                                         device, message):
    data, _ = tiny_data
    err = _bad(["-c", str(tiny_checkpoints["unet"]), "-d", str(data), "--device", device,
                "-o", str(tmp_path / "o")], capsys)
    assert err.startswith(f"relaxflow-evaluate: error: {message}")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, message", [
    (["--steps", "2", "--plot-steps", "1", "100"],
     "plot step 100 is outside the rollout: plot steps (--plot-steps) must be in 1..2 "
     "(--steps)"),
    (["--steps", "100", "--plot-steps", "100"],
     f"the data have 24 frames, too few for T_in + steps = {T_IN} + 100"),
])
def test_plot_steps_and_steps_are_checked_before_evaluating(
        tiny_data, tiny_checkpoints, tmp_path, capsys, monkeypatch, extra, message):
    """--plot-steps beyond the rollout (or a rollout beyond the data) fails at once, not
    after every model was evaluated."""
    from evaluate import job

    def never(*a, **k):
        raise AssertionError("evaluation started")
    monkeypatch.setattr(job, "_evaluate_model", never)
    data, _ = tiny_data
    err = _bad(["-c", str(tiny_checkpoints["unet"]), "-d", str(data), "-s", "all",
                "-o", str(tmp_path / "o"), *extra], capsys)
    assert message in err
    assert not (tmp_path / "o").exists()

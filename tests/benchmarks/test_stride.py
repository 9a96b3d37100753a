"""The stride study on a tiny dataset: thinning keeps the physical time, every stride is
trained and scored over the same horizon, and the report regenerates from its JSON."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "evaluate"))

import bench_stride as BS  # noqa: E402
import stride_report as SR  # noqa: E402
from evaluate_helpers import make_dataset  # noqa: E402


def _base(tmp_path, n_time: int):
    """A tiny dataset stored every solver step; returns (dataset, its path)."""
    ds = make_dataset(n_time=n_time)
    ds.attrs.update(save_every=1, dt=0.5)
    base = tmp_path / "base.nc"
    ds.to_netcdf(base)
    return ds, base


def _study(tmp_path, base, *args: str) -> dict:
    """Run the study on ``base`` (one epoch, tiny) and return its JSON."""
    out = tmp_path / "out"
    assert BS.main(["--data", str(base), "--models", "unet", "--epochs", "1", "--work",
                    str(tmp_path / "w"), "--frontier-json", str(tmp_path / "none.json"),
                    "--out", str(out), "--max-windows", "4", *args]) == 0
    return json.loads((out / "stride.json").read_text())


def test_stride_study_end_to_end(tmp_path):
    import xarray as xr
    ds, base = _base(tmp_path, 40)
    th = BS.thinned(base, 2, tmp_path / "w" / "t2.nc")
    with xr.open_dataset(th) as t:
        assert t.sizes["time"] == 20 and t.attrs["save_every"] == 2 and t.attrs["dt"] == 1.0
        assert float(t.time[1] - t.time[0]) == 2 * float(ds.time[1] - ds.time[0])
    out = tmp_path / "out"
    data = _study(tmp_path, base, "--strides", "1", "2", "--horizon", "4", "--params", "3000")
    assert [(r["stride"], r["steps"]) for r in data["rows"]] == [(1, 4), (2, 2)]
    assert all(r["solver_steps_per_s"] == r["fps"] * r["stride"] for r in data["rows"])
    assert (out / "stride.md").read_text() == SR.markdown(data)
    assert (out / "stride.png").stat().st_size > 0
    rows = [{"stride": 2, "test-domain/velocity": 0.3}, {"stride": 8, "test-domain/velocity": 0.6},
            {"stride": 4, "test-domain/velocity": 0.45}]
    assert SR.largest_2x_stride(rows) == 4


def test_each_budget_trains_in_its_own_folder_and_gets_its_row(tmp_path):
    _, base = _base(tmp_path, 24)
    out = tmp_path / "out"
    data = _study(tmp_path, base, "--strides", "1", "--horizon", "2", "--params", "8000",
                  "1500")
    rows = data["rows"]
    assert [r["params_target"] for r in rows] == [8000, 1500]
    assert rows[0]["params"] > rows[1]["params"]
    assert rows[0]["flops_per_frame"] > rows[1]["flops_per_frame"]
    assert BS.run_folder(tmp_path / "w", "unet", 1, 1500).joinpath("best.pt").is_file()
    assert BS.run_folder(tmp_path / "w", "unet", 1, BS.DEFAULT_PARAMS).name == "unet_stride1"
    md = (out / "stride.md").read_text()
    assert md == SR.markdown(data) and "8,000 and 1,500 parameters" in md


def test_extra_runs_add_one_models_lean_width_only():
    args = BS.parse(["--models", "gconv_unet", "unet", "--extra", "gconv_unet:25000",
                     "unet:60000"])
    assert BS.runs_of(args) == [("gconv_unet", 60000), ("unet", 60000), ("gconv_unet", 25000)]
    with pytest.raises(SystemExit, match="--extra 'gconv_unet': expected MODEL:PARAMS"):
        BS.runs_of(BS.parse(["--extra", "gconv_unet"]))

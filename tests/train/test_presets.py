"""Named training presets: the ``cpu`` recipe has one home (train/presets/cpu.toml) that
the CLI, the demo and the benchmarks read."""

import sys
from pathlib import Path

import pytest

import train
from train import ConfigError
from train.cli import args_to_config, build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_preset_is_a_typed_partial_config():
    assert "cpu" in train.available_presets()
    cfg = train.load_preset("cpu", data=["d.nc"], model="gconv_unet")
    assert (cfg.T_in, cfg.K, cfg.epochs, cfg.max_steps_per_epoch, cfg.lr) == (8, 6, 15, 32, 4e-3)
    assert cfg.patience is None                      # listed in the preset's unset
    assert cfg.loss_weights == {"density": 2.0} and cfg.split.valid_stride == 2
    assert cfg.device == "cpu" and cfg.model == "gconv_unet"
    with pytest.raises(ConfigError, match="unknown training preset 'gpu'.*cpu"):
        train.preset("gpu")


def test_cli_layers_preset_config_and_flags(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('lr = 1e-3\nmodel = "unet"\n[split]\nheldout = [0]\n')
    ns = build_parser().parse_args(["--preset", "cpu", "--config", str(toml), "--K", "3",
                                    "--data", "d.nc"])
    cfg = args_to_config(ns)
    assert (cfg.lr, cfg.K, cfg.T_in, cfg.epochs) == (1e-3, 3, 8, 15)   # flag > file > preset
    assert cfg.split.valid_stride == 2 and cfg.split.heldout == [0]   # tables merge


def test_demo_and_benchmarks_read_the_preset():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from accuracy.plan import RECIPE, SCALES
    cpu = train.load_preset("cpu")
    tr = SCALES["cpu"]["train"]
    assert {k: tr[k] for k in ("T_in", "K", "batch_size", "epochs", "lr", "patience")} == \
        {k: getattr(cpu, k) for k in ("T_in", "K", "batch_size", "epochs", "lr", "patience")}
    assert RECIPE["loss_weights"] == cpu.loss_weights and RECIPE["noise"] == cpu.noise
    import bench_recipe
    assert bench_recipe.BASE["lr"] == cpu.lr and bench_recipe.BASE["K"] == 3
    demo = (ROOT / "scripts" / "demo.py").read_text()
    assert "load_preset" in demo and "4e-3" not in demo and "default=15" not in demo

import json
import subprocess
import sys

import pytest
import torch

from surrogate.checkpoint import read_checkpoint
from train.cli import args_to_config, build_parser, main


def test_help_shows_examples():
    r = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0
    assert "examples:" in r.stdout and "--resume" in r.stdout and "torchrun" in r.stdout


def test_cli_run_writes_checkpoints(tiny_nc, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["--data", str(tiny_nc), "--model", "unet", "--out", str(out), "--hidden", "4",
               "--depth", "2", "--model-opt", "norm_groups=1", "--T-in", "2", "--K", "2",
               "--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out / "best.pt")
    assert read_checkpoint(out / "best.pt")["model_config"]["hidden"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--data", "missing.nc"], "no such data file"),
    (["--model", "unet"], "no data given"),
    (["--data", "x.nc", "--config", "nope.toml"], "no such config file"),
    (["--data", "x.nc", "--K", "0"], "K must be >= 1"),
    (["--data", "x.nc", "--device", "gpu"],
     "unknown device 'gpu'; accepted: auto, cpu, cuda or cuda:N"),
    pytest.param(["--data", "x.nc", "--device", "cuda"],
                 "error: cuda requested but torch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("relaxflow-train")


def test_toml_config_with_cli_overrides(tiny_nc, tmp_path, capsys):
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(f"""
data = ["{tiny_nc}"]
out = "{tmp_path / 'toml'}"
T_in = 2
K = 2
epochs = 1
lr = 0.002
progress = false
device = "cpu"
[model]
name = "relaxed_gconv_unet"
hidden = 4
depth = 2
norm_groups = 1
[split]
heldout = [0]
[loss_weights]
density = 2.0
""")
    ns = build_parser().parse_args(["--config", str(cfg_file), "--epochs", "2",
                                    "--hidden", "3", "--heldout", "1,2", "--lr", "0.001",
                                    "--loss-weight", "u=1.5", "--loss-weight", "v=1.5"])
    cfg = args_to_config(ns)
    assert cfg.loss_weights == {"density": 2.0, "u": 1.5, "v": 1.5}
    assert (cfg.epochs, cfg.lr, cfg.model) == (2, 0.001, "relaxed_gconv_unet")
    assert cfg.model_config == {"hidden": 3, "depth": 2, "norm_groups": 1}
    assert cfg.split.heldout == [1, 2] and cfg.T_in == 2

    assert main(["--config", str(cfg_file), "--epochs", "2", "--hidden", "3"]) == 0
    ckpt = read_checkpoint(tmp_path / "toml" / "last.pt")
    assert ckpt["model_config"]["hidden"] == 3
    assert ckpt["metadata"]["splits"]["test_domain"]["sims"] == [0]
    lines = (tmp_path / "toml" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [0, 1, 2]


def test_load_config_python_api(tmp_path):
    from train import ConfigError, load_config
    f = tmp_path / "c.toml"
    f.write_text('data = "a.nc"\nepochs = 7\n[model]\nname = "gconv_unet"\nhidden = 8\n'
                 '[split]\npreset = "paper"\n')
    cfg = load_config(f, epochs=3, model_config={"depth": 3})
    assert cfg.data == ["a.nc"] and cfg.epochs == 3 and cfg.model == "gconv_unet"
    assert cfg.model_config == {"hidden": 8, "depth": 3} and cfg.split.preset == "paper"
    f.write_text("epoch = 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['epoch'\]"):
        load_config(f)


@pytest.mark.parametrize("line,message", [
    ('ema = "none"', r"ema must be a number or unset, got 'none'"),
    ('lr = "1e-3"', r"lr must be a number, got '1e-3'"),
    ("epochs = 2.5", r"epochs must be int, got 2.5"),
    ('persistence_init = "yes"', r"persistence_init must be bool, got 'yes'"),
])
def test_toml_values_of_the_wrong_type_name_the_field(tmp_path, line, message):
    from train import ConfigError, load_config
    f = tmp_path / "c.toml"
    f.write_text(f'data = "a.nc"\n{line}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(f)


def test_the_helps_config_example_is_a_valid_configuration(capsys):
    """The TOML the help prints (train.config.TOML_EXAMPLE) loads as it reads."""
    import tomllib
    from train.cli import build_parser
    from train.config import TOML_EXAMPLE, config_from_dict
    cfg = config_from_dict(tomllib.loads(TOML_EXAMPLE))
    assert cfg.data == ["data/rotation.nc"] and cfg.epochs == 50
    assert cfg.model == "relaxed_gconv_unet" and cfg.split.heldout == "auto"
    assert cfg.model_config["breaking_inputs"] == ["cause"]
    build_parser().print_help()
    assert 'breaking_inputs = ["cause"]' in capsys.readouterr().out

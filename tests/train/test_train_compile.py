"""``compile`` on a CPU is refused with one line before anything is read (measured there:
minutes of graph building, then a step 2x slower than eager)."""

from train import ConfigError, fit
from train.cli import main as train_main

import pytest

from train_fixtures import tiny_config


def test_compile_on_cpu_is_refused_with_one_line(tiny_nc, tmp_path, capsys):
    with pytest.raises(ConfigError, match="refused on a CPU"):
        fit(tiny_config(tiny_nc, tmp_path / "run", compile=True, device="cpu"))
    assert not (tmp_path / "run").exists()
    rc = train_main(["--data", str(tiny_nc), "--out", str(tmp_path / "run"), "--compile",
                     "--device", "cpu", "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "use it on CUDA" in err, err

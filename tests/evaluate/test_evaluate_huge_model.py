"""A checkpoint whose (digested) config asks for a model too large for memory is refused
by evaluate with one line, before anything is built."""

import json

import torch

from evaluate.cli import main as evaluate_main
from surrogate.checkpoint import _digest


def test_evaluate_refuses_a_checkpoint_too_large_for_memory(tiny_data, tiny_checkpoints,
                                                            tmp_path, capsys):
    path = tmp_path / "huge.pt"
    raw = torch.load(tiny_checkpoints["unet"], weights_only=True)
    cfg = json.loads(raw["model_config"])
    cfg["hidden"] = 10**6
    raw["model_config"] = json.dumps(cfg, sort_keys=True)
    raw["digest"] = _digest(raw)
    torch.save(raw, path)
    rc = evaluate_main(["-c", str(path), "-d", str(tiny_data[0]), "--out",
                        str(tmp_path / "rep"), "-q", "--no-figures"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "hidden=1000000 needs up to" in err, err
    assert not (tmp_path / "rep").exists()

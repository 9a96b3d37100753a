"""Two CPU processes with the gloo backend, as torchrun would start them."""

import json

import torch
import torch.multiprocessing as mp

from surrogate.checkpoint import read_checkpoint

from train_fixtures import ddp_worker, free_port, tiny_config


def test_two_process_gloo_ddp_trains_and_writes_one_checkpoint(tiny_nc, tmp_path):
    out = tmp_path / "ddp"
    cfg = tiny_config(tiny_nc, out, model="relaxed_gconv_unet", epochs=2)
    mp.spawn(ddp_worker, args=(2, free_port(), cfg), nprocs=2, join=True)

    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2]          # rank 0 alone logs
    assert lines[-1]["valid_loss"] < lines[0]["valid_loss"]
    # both processes saw their half of the 60 train windows every epoch
    assert all(r["train_samples_per_s"] > 0 for r in lines[1:])
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["metadata"]["world_size"] == 2
    assert not any(k.startswith(("module.", "step.")) for k in ckpt["state_dict"])
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())

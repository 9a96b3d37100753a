"""scripts/gpu_check.py on the CPU at its tiny size: every check of the three parts runs
and passes, and the report, JSON and log are written with their sections."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.py"

EXPECTED = {
    "1": ["simulate", "train --amp bf16", "train --compile", "train --resume (more epochs)",
          "forecast on the device vs CPU", "torchrun --nproc_per_node 1 -m train",
          "process group + DDP step"],
    "2": ["committed CPU simulator figure", "simulator on cpu, 16x16", "surrogates fp32",
          "surrogates bf16", "surrogates bf16+compile"],
    "3": ["paper-scale plan: steps and FLOP", "paper-scale optimiser steps, amp none",
          "paper-scale optimiser steps, amp bf16", "projection of the paper-scale benchmark"],
}
SECTIONS = ["# GPU check", "**Machine:**", "**Date:**", "## Environment", "## Summary",
            "## 1. Smoke tests on the device", "## 2. Speed table",
            "## 3. Paper-scale throughput probe", "## Files"]


def test_tiny_cpu_run_passes_every_check_and_writes_the_report(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--size", "tiny",
                        "--out", str(out), "--work", str(work)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(f.name for f in out.iterdir()) == ["gpu_check.json", "gpu_check.log",
                                                     "gpu_check.md"]
    data = json.loads((out / "gpu_check.json").read_text())
    got = {part: [c["name"] for c in data["checks"] if c["part"] == part] for part in EXPECTED}
    assert got == EXPECTED
    bad = [(c["name"], c["status"], c["error"]) for c in data["checks"] if c["status"] != "ok"]
    assert not bad
    for c in data["checks"]:
        assert c["seconds"] >= 0 and c["device_name"] and c["torch_version"]
    assert data["environment"]["device"] == "cpu" and data["environment"]["date"]

    speed = data["parts"]["2"]
    assert [(r["mode"], r["status"]) for r in speed["rows"]] == [
        (m, "ok") for m in ("fp32", "bf16", "bf16+compile") for _ in range(3)]
    assert all(r["fps"] > 0 and r["vs_device_sim"] > 0 for r in speed["rows"])
    assert speed["committed"]["batched_fps"] > 0

    probe = data["parts"]["3"]
    assert probe["plan"]["runs"] > 0 and probe["plan"]["total_steps"] > 0
    for amp in ("none", "bf16"):
        assert set(probe["probe"][amp]["rows"]) == set(probe["plan"]["steps_by_model"])
        assert probe["projection"][amp]["gpu_hours"] > 0
    forecast = next(c for c in data["checks"] if c["name"].startswith("forecast"))
    assert forecast["details"]["rel_fp32"] <= forecast["details"]["tol_fp32"]

    md = (out / "gpu_check.md").read_text()
    positions = [md.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert md.count("| **ok** |") == sum(map(len, EXPECTED.values()))
    log = (out / "gpu_check.log").read_text()
    assert "torch.distributed.run" in log and "done: 16 of 16 checks ok" in log
    assert (work / "runs" / "bf16" / "best.pt").is_file()   # --work is kept


def test_items_not_started_in_the_budget_are_recorded_not_run(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    monkeypatch.delenv("OUT", raising=False)
    rc = gpu_check.main(["--device", "cpu", "--size", "tiny", "--parts", "2",
                         "--budget-s", "1e-9", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {c["name"]: (c["status"], c["error"]) for c in data["checks"]}
    assert rc == 1
    assert status["committed CPU simulator figure"][0] == "ok"
    assert status["simulator on cpu, 16x16"] == ("skipped", "time budget of part 2 spent")
    assert status["surrogates fp32"] == ("partial", "3 rows not started: time budget of part 2")
    assert data["parts"]["2"]["rows"] == []
    assert "| **partial** |" in (tmp_path / "gpu_check.md").read_text()

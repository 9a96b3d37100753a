"""Speed of the five surrogates at equal parameter count, in one run.

For every model (width chosen by ``surrogate.width_for_params`` to match ``--params``):
forward+backward samples/s (training step without the optimiser), inference frames/s of
the model as built (kernels expanded every call) and of its ``export()`` (plain Conv2d).
Prints the ratios the project aims at -- relaxed/strict training step <= 1.5x, exported
relaxed/strict inference <= 1.1x -- and writes ``benchmarks/results/models.md``: one
section per machine and setting, replaced when re-run with the same setting.

Timing: every (model, phase) is timed once per round, rounds interleave all models, and
the fastest round is kept (on a shared machine the minimum is the least disturbed
estimate, and interleaving exposes strict and relaxed models to the same load). On a
machine shared with other jobs use ``--threads 1``: OpenMP threads waiting for a busy
core made two-thread timings 2-10x slower and erratic on the project's 2-core box.

    python benchmarks/bench_models.py --threads 1           # CPU, ~1e6 parameters
    python benchmarks/bench_models.py --hidden 11 --models gconv_unet relaxed_gconv_unet
    python benchmarks/bench_models.py --device cuda --amp bf16 --compile --params 5e6
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere without relying on the install mode
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from surrogate import available_models, build_model, count_parameters, width_for_params  # noqa: E402
from train.objective import autocast  # noqa: E402  (bench_speed imports it from here too)

PAIRS = [("relaxed_gconv_unet", "gconv_unet"), ("relaxed_steer_unet", "steer_unet")]
PHASES = ("train", "infer", "export")


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def grid_option(name: str, size: int) -> dict:
    """``{"grid": (size, size)}`` for models whose weights depend on position."""
    from surrogate.registry import needs_grid
    return {"grid": (size, size)} if needs_grid(name, {}) else {}


def setup_model(name: str, args, device: torch.device) -> dict:
    """Build ``name`` at the target size; return its description and timed closures."""
    common = dict(T_in=args.T_in, depth=args.depth, group=args.group_for(name),
                  **grid_option(name, args.size))
    hidden = args.hidden or width_for_params(name, args.params, **common)
    torch.manual_seed(0)
    model = build_model(name, hidden=hidden, **common).to(device)
    c = model.layout.num_channels
    x = torch.randn(args.batch, args.T_in, c, args.size, args.size, device=device)
    target = torch.randn(args.batch, c, args.size, args.size, device=device)
    xi = torch.randn(args.infer_batch, args.T_in, c, args.size, args.size, device=device)
    train_model = torch.compile(model) if args.compile else model

    def train():
        model.train()
        model.zero_grad(set_to_none=True)
        with autocast(device, args.amp):
            loss = (train_model(x).float() - target).square().mean()
        (loss + model.equivariance_penalty()).backward()

    def infer_fn(m):
        mc = torch.compile(m) if args.compile else m

        def run():
            m.eval()
            with torch.inference_mode(), autocast(device, args.amp):
                mc(xi)
        return run

    exported = model.export()
    group = model.config.get("group")
    return {"name": name, "group": group if group != "trivial" else "-",
            "hidden": hidden, "params": count_parameters(model),
            "fns": {"train": train, "infer": infer_fn(model), "export": infer_fn(exported)}}


def run_all(models: list[dict], args, device: torch.device) -> dict[str, dict]:
    """Warm up, then time every (model, phase) once per round; the fastest round counts."""
    for m in models:
        for fn in m["fns"].values():
            for _ in range(args.warmup):
                fn()
    rows = {m["name"]: {k: v for k, v in m.items() if k != "fns"} for m in models}
    for _ in range(args.reps):
        for m in models:
            for ph in PHASES:
                sync(device)
                t0 = time.perf_counter()
                m["fns"][ph]()
                sync(device)
                r = rows[m["name"]]
                r["t_" + ph] = min(r.get("t_" + ph, math.inf), time.perf_counter() - t0)
    for r in rows.values():
        for ph in PHASES:
            r[ph] = (args.batch if ph == "train" else args.infer_batch) / r["t_" + ph]
    return rows


def ratios(rows: dict[str, dict]) -> list[str]:
    lines = []
    for relaxed, strict in PAIRS:
        if relaxed in rows and strict in rows:
            r, s = rows[relaxed], rows[strict]
            tr = r["t_train"] / s["t_train"]
            ex = r["t_export"] / s["t_export"]
            lines.append(f"- `{relaxed}` / `{strict}` time ratio: training step {tr:.2f}x "
                         f"(goal <= 1.5x: {'met' if tr <= 1.5 else 'MISSED'}), exported "
                         f"inference {ex:.2f}x (goal <= 1.1x: "
                         f"{'met' if ex <= 1.1 else 'MISSED'})")
    return lines


def markdown(rows: dict[str, dict], args, device: torch.device, heading: str) -> str:
    out = [heading, "",
           f"- date: {dt.datetime.now().isoformat(timespec='minutes')}",
           f"- machine: {machine_name(device)} ({device.type}"
           + (f", torch threads: {torch.get_num_threads()}" if device.type == "cpu" else "") + ")",
           f"- torch {torch.__version__}, python {platform.python_version()}",
           f"- input {args.size}x{args.size}, T_in={args.T_in}, depth={args.depth}, "
           f"train batch {args.batch}, inference batch {args.infer_batch}, "
           f"amp={args.amp}, compile={args.compile}; best of {args.reps} interleaved "
           f"rounds after {args.warmup} warm-up",
           "",
           "| model | group | hidden | params | train samples/s | inference frames/s "
           "| exported frames/s |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows.values():
        out.append(f"| {r['name']} | {r['group']} | {r['hidden']} | {r['params']:,} | "
                   f"{r['train']:.1f} | {r['infer']:.1f} | {r['export']:.1f} |")
    out += ["", *ratios(rows), ""]
    return "\n".join(out)


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section with the same heading, or append; keep the others."""
    title = "# Model speed (benchmarks/bench_models.py)\n"
    text = path.read_text() if path.exists() else title
    parts = text.split("\n## ")
    head, sections = parts[0], ["## " + p for p in parts[1:]]
    sections = [s for s in sections if s.splitlines()[0] != heading]
    sections.append(section)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head.rstrip("\n") + "\n\n"
                    + "\n".join(s.rstrip("\n") + "\n" for s in sections))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=float, default=1e6, help="target parameter count")
    p.add_argument("--hidden", type=int, default=None, help="same width for every model "
                   "instead of equal parameters (measures the pure relaxation overhead)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16, help="training batch")
    p.add_argument("--infer-batch", type=int, default=16)
    p.add_argument("--T-in", dest="T_in", type=int, default=10)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--group", default="C4", help="C4 or D4 (all equivariant models)")
    p.add_argument("--steer-group", default=None, help="group of the steer models "
                   "(default: --group; C8 allowed)")
    p.add_argument("--models", nargs="+", default=available_models())
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--reps", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "models.md")
    args = p.parse_args(argv)
    args.params = int(args.params)
    steer_group = args.steer_group or args.group
    args.group_for = lambda n: steer_group if "steer" in n else args.group
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    models = [setup_model(name, args, device) for name in args.models]
    rows = run_all(models, args, device)
    for r in rows.values():
        print(f"{r['name']:20s} hidden={r['hidden']:3d} params={r['params']:>9,} "
              f"train {r['train']:8.1f} samples/s  infer {r['infer']:8.1f} frames/s  "
              f"exported {r['export']:8.1f} frames/s", flush=True)
    for line in ratios(rows):
        print(line)
    size = f"hidden={args.hidden}" if args.hidden else f"~{args.params:,} params"
    heading = (f"## {machine_name(device)}: {args.size}x{args.size}, {size}, "
               f"amp={args.amp}, compile={args.compile}, models={','.join(args.models)}")
    write_section(args.out, heading, markdown(rows, args, device, heading))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

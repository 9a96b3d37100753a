"""Command line: ``python -m evaluate`` (and ``relaxflow-evaluate``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Iterator, Sequence

import numpy as np

from surrogate.checkpoint import KEY_ENV  # when set: refuse checkpoints not signed with it
from surrogate.devices import DEVICE_HELP


__all__ = ["main", "build_parser"]

PROG = "relaxflow-evaluate"
EXAMPLES = """\
examples:
  python -m evaluate --checkpoint runs/rg/best.pt --data data/rotation.nc \\
      --split test-domain --steps 20 --out results/rg
  python -m evaluate --checkpoint runs/rg/best.pt runs/unet/best.pt \\
      --data data/rotation.nc --split test-future --split test-domain --out results/cmp
  python -m evaluate --checkpoint runs/rg/best.pt --data other.nc --split all \\
      --stride 20 --max-windows 64 --device cuda --out results/other

splits: test-future, test-domain, valid, train (as recorded in each checkpoint), and
all (every simulation of --data; for data the model was not trained on).
outputs in --out: metrics.csv (per model, split and step), summary.md (models x splits,
and which symmetry each model keeps), summary.json, PNG figures and GIF rollouts.
--overwrite replaces only these (the old report's, as its summary.json lists them) and
keeps every other file, so a training run folder can hold its report. One process owns
--out at a time (another: exit 2).
environment: RELAXFLOW_CHECKPOINT_KEY, when set, refuses checkpoints that are not
signed with it (relaxflow-train signs with the same variable).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=(
        "Roll trained relaxflow surrogates out on a dataset split and report RMSE (the\n"
        "paper's), VRMSE, energy-spectrum error, divergence, correlation time,\n"
        "equivariance errors, the symmetry each model keeps and learned relaxation\n"
        "weights."),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", nargs="+", action="extend", required=True,
                   metavar="PT", help="one or more checkpoints (several: one comparison)")
    p.add_argument("--data", "-d", nargs="+", action="extend", required=True,
                   metavar="NC", help="dataset file(s); shards in the training order")
    p.add_argument("--split", "-s", action="append", metavar="NAME",
                   help="split to evaluate (repeatable; default test-future and "
                        "test-domain)")
    p.add_argument("--steps", type=int, default=20, help="rollout steps (default 20)")
    p.add_argument("--out", "-o", default="results",
                   help="output directory (new or empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report in a non-empty --out (only once the new one "
                        "is complete); files that are not the report's are kept")
    p.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default auto)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--stride", type=int, default=None,
                   help="start-time stride of the windows (default: the split spec's)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="evaluate at most this many windows per split, evenly spread")
    p.add_argument("--equivariance-windows", type=int, default=8,
                   help="histories per split for the model equivariance error")
    p.add_argument("--group", choices=("C4", "D4"), default=None,
                   help="group of the equivariance error (default: the model's; C4)")
    p.add_argument("--discovery-group", choices=("C4", "D4"), default="D4",
                   help="group on which to judge which symmetry each model keeps "
                        "(default D4, for every model)")
    p.add_argument("--label", action="append", default=None,
                   help="display name per checkpoint (repeat in checkpoint order)")
    p.add_argument("--quantity", default="speed",
                   help="what the rollout pictures show: speed, vorticity, density")
    p.add_argument("--plot-steps", type=int, nargs="+", default=None,
                   help="rollout steps shown in the panels (default: 4 spread out)")
    p.add_argument("--no-figures", action="store_true", help="write no PNG/GIF")
    p.add_argument("--no-gif", action="store_true", help="write no GIF animation")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress lines, and no raw numpy warnings (non-finite data "
                        "still get one warning line naming where)")
    return p


@contextlib.contextmanager
def quiet_numerics() -> Iterator[None]:
    """No numpy floating-point warnings and no RuntimeWarnings (what non-finite data
    raise in the metrics: the report's own warning line names the frame instead)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        for name in ("steps", "batch_size", "stride", "max_windows", "equivariance_windows"):
            v = getattr(args, name)
            if v is not None and v < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    except SystemExit as e:  # usage errors (2) and --help (0) as a return code
        return int(e.code or 0)
    from .job import run
    from .rollout import first_line

    try:
        with quiet_numerics() if args.quiet else contextlib.nullcontext():
            out = run(args.checkpoint, args.data,
                      args.split or ["test-future", "test-domain"], args.steps, args.out,
                      device=args.device, batch_size=args.batch_size,
                      stride=args.stride, max_windows=args.max_windows,
                      equivariance_windows=args.equivariance_windows, group=args.group,
                      discovery_group=args.discovery_group,
                      labels=args.label, figures=not args.no_figures,
                      gif=not args.no_gif and not args.no_figures, quantity=args.quantity,
                      plot_steps=args.plot_steps, verbose=not args.quiet,
                      overwrite=args.overwrite, key=os.environ.get(KEY_ENV) or None)
    except (ValueError, OSError) as e:  # EvaluationError is a ValueError
        print(f"{parser.prog}: error: {first_line(e)}", file=sys.stderr)
        return 2
    print(out / "summary.md")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Command line: ``relaxflow-simulate`` / ``python -m simulate``.

    relaxflow-simulate list
    relaxflow-simulate spec rotation --resolution 32 --set n_magnitudes=2 > my.toml
    relaxflow-simulate generate rotation -o data/rotation.nc --save-every 4 --workers 2
    relaxflow-simulate generate my.toml -o data/mine.nc --shard 0/4 --resume
    relaxflow-simulate merge data/rot.shard*.nc -o data/rotation.nc
    relaxflow-simulate info data/rotation.nc

Bad input gives one line on stderr and exit code 2; a full disk one line naming the file
and exit code 1 (nothing half-written is left).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "relaxflow-simulate"


class _Parser(argparse.ArgumentParser):
    def error(self, message):          # one line, exit 2 (argparse prints usage too)
        raise _UsageError(message)


class _UsageError(Exception):
    pass


_WORDS = {"true": True, "yes": True, "false": False, "no": False, "none": None, "null": None}


def _value(text: str):
    t = text.strip()
    if t.startswith("[") or t.startswith("{"):
        try:
            return json.loads(t)
        except json.JSONDecodeError:
            raise _UsageError(f"cannot parse {text!r} as JSON") from None
    if "," in t:
        return [_value(p) for p in t.split(",") if p.strip()]
    if t.lower() in _WORDS:
        return _WORDS[t.lower()]
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def _overrides(args) -> dict:
    ov = {}
    for item in args.set or []:
        if "=" not in item:
            raise _UsageError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        ov[k.strip().replace("-", "_")] = _value(v)
    shortcuts = ("resolution", "steps", "save_every", "seed", "dt")
    return ov | {k: getattr(args, k) for k in shortcuts if getattr(args, k, None) is not None}


def _spec(args):
    from .presets import preset
    from .spec_toml import load_spec
    s = args.scenario
    build = load_spec if s.endswith(".toml") or Path(s).is_file() else preset
    return build(s, **_overrides(args))


def _add_spec_args(p):
    p.add_argument("scenario", help="preset name (see `list`) or a TOML spec file")
    p.add_argument("--set", "-p", action="append", metavar="KEY=VALUE",
                   help="preset parameter, repeatable (lists: a,b,c)")
    p.add_argument("--resolution", type=int)
    p.add_argument("--steps", type=int, help="solver steps")
    p.add_argument("--save-every", type=int, help="store every k-th solver step")
    p.add_argument("--seed", type=int)
    p.add_argument("--dt", type=float, help="solver time step")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="Generate and manage relaxflow smoke-plume datasets (PhiFlow).")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="simulate a scenario and write a NetCDF dataset")
    _add_spec_args(g)
    g.add_argument("-o", "--out", required=True, help="output NetCDF file")
    g.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    g.add_argument("--threads", type=int, help="torch threads per worker (default 1)")
    g.add_argument("--batch-size", type=int, default=16,
                   help="simulations advanced together in one PhiFlow batch (default 16)")
    g.add_argument("--shard", help="i/n: simulate only the i-th of n blocks of simulations")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (an --overwrite one too), keeping finished parts")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (with --resume: keep the finished parts of "
                        "an interrupted run of the same spec)")
    g.add_argument("--max-parts", type=int, help="stop after this many new parts (resumable)")
    # checked by surrogate.devices (not imported here: it loads torch)
    g.add_argument("--device", default="auto",
                   help="auto (default), cpu, cuda or cuda:N (N: the GPU's index)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    m = sub.add_parser("merge", help="join shard files into one dataset")
    m.add_argument("files", nargs="+")
    m.add_argument("-o", "--out", required=True)
    m.add_argument("--overwrite", action="store_true")
    m.add_argument("--allow-partial", action="store_true", help="merge even if simulations are missing")

    i = sub.add_parser("info", help="validate dataset files (the schema, and every stored "
                                    "value is read: a damaged block is reported) and print "
                                    "a summary")
    i.add_argument("files", nargs="+")
    i.add_argument("--check-nans", action="store_true",
                   help="also refuse NaN or Inf in u, v, density")

    sub.add_parser("list", help="list the scenario presets and their parameters")

    s = sub.add_parser("spec", help="print the full spec of a scenario as TOML (editable, reusable)")
    _add_spec_args(s)
    return ap


def _cmd_generate(args):
    from .generate import format_summary, generate
    spec = _spec(args)
    summary = generate(spec, args.out, workers=args.workers, batch_size=args.batch_size, shard=args.shard,
                       resume=args.resume, overwrite=args.overwrite, progress=args.progress,
                       max_parts=args.max_parts, device=args.device, threads=args.threads)
    print(format_summary(summary))


def _cmd_merge(args):
    from .dataset import merge, open_dataset
    out = merge(args.files, args.out, overwrite=args.overwrite, allow_partial=args.allow_partial)
    with open_dataset(out) as ds:
        print(f"wrote {out}: {ds.sizes['sim']} simulations from {len(args.files)} files")


def _cmd_info(args):
    from .dataset import open_dataset
    for f in args.files:
        ds = open_dataset(f, check_nans=args.check_nans, scan=True)  # every value read once
        a = ds.attrs
        held = int(ds["heldout"].values.sum()) if "heldout" in ds.coords else "?"
        warm = ds["warmup_steps"].values if "warmup_steps" in ds.coords else []
        late = (f", {int((warm > 0).sum())} recorded after a warm-up of "
                f"{'/'.join(str(int(w)) for w in sorted(set(warm[warm > 0])))} steps"
                if len(warm) and (warm > 0).any() else "")
        print(f"{f}: scenario {a.get('scenario', '?')}, sims {ds.sizes['sim']} (held out {held}{late}), "
              f"frames {ds.sizes['time']} (dt {a.get('dt', '?')}), grid {ds.sizes['y']}x{ds.sizes['x']}, "
              f"variables {', '.join(ds.data_vars)}; valid")
        ds.close()


def _cmd_list(args):
    from .presets import _PRESETS, preset_parameters
    for name, fn in _PRESETS.items():
        doc = " ".join((fn.__doc__ or "").replace("``", "").split())
        params = ", ".join(f"{k}={v!r}" for k, v in preset_parameters(name).items() if k != "solver")
        print(f"{name}: {doc}\n    parameters: {params}")


def _cmd_spec(args):
    from .spec_toml import spec_to_toml
    sys.stdout.write(spec_to_toml(_spec(args)))


_AFTER_FULL_DISK = {
    "generate": "free some space, then run the same command with --resume (finished parts "
                "are kept)",
    "merge": "free some space, then merge again"}


def _disk_full(e: OSError) -> bool:
    """Whether ``e`` is a ``surrogate.diskfull.DiskFullError`` (that module is loaded by
    generate, or by a write that failed; never imported here, so info stays light)."""
    mod = sys.modules.get("surrogate.diskfull")
    return mod is not None and isinstance(e, mod.DiskFullError)


def main(argv=None) -> int:
    from .dataset import DatasetError, OptionRequired
    from .phiflow_step import SimulationError
    from .spec import SpecError
    args = None
    try:
        args = build_parser().parse_args(argv)
        {"generate": _cmd_generate, "merge": _cmd_merge, "info": _cmd_info,
         "list": _cmd_list, "spec": _cmd_spec}[args.cmd](args)
        return 0
    except (_UsageError, SpecError, DatasetError) as e:
        text = e.for_cli() if isinstance(e, OptionRequired) else str(e)  # the flag's name
        print(f"{PROG}: error: {' '.join(text.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (finished parts are kept; rerun with --resume)", file=sys.stderr)
        return 130
    except SimulationError as e:
        print(f"{PROG}: simulation failed: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except OSError as e:
        if not _disk_full(e):
            raise
        hint = _AFTER_FULL_DISK.get(getattr(args, "cmd", None))
        print(f"{PROG}: error: {e}{f'; {hint}' if hint else ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

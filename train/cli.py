"""Command line: ``python -m train`` / ``relaxflow-train``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

from surrogate.checkpoint import KEY_ENV  # when set: sign every checkpoint with it
from surrogate.devices import DEVICE_HELP
from surrogate.records import ModelConfig
from surrogate.registry import MODELS

from .config import TOML_EXAMPLE, ConfigError, config_from_dict, merge_overrides, read_toml

__all__ = ["main", "build_parser"]

PROG = "relaxflow-train"

EXAMPLES = """\
examples:
  # train a relaxed group-conv U-Net on one dataset
  python -m train --data data/rotation.nc --model relaxed_gconv_unet --out runs/rg

  # several shard files, a smaller model, 20 epochs, push-forward training
  python -m train --data data/rot-0.nc data/rot-1.nc --model unet --hidden 16 \\
      --depth 3 --epochs 20 --pushforward --out runs/unet

  # everything from a TOML file, with command-line overrides
  python -m train --config cfg.toml --lr 5e-4 --epochs 100

  # the 2-core CPU recipe of the demo and benchmarks (train/presets/cpu.toml)
  python -m train --preset cpu --data data/rotation.nc --model gconv_unet --out runs/g

  # velocity only (the paper's observation model: density is never shown)
  python -m train --data data/settling.nc --model relaxed_gconv_unet --fields u,v

  # a strictly equivariant model given the known cause of the symmetry breaking
  python -m train --data data/rotation.nc --model gconv_unet --breaking-inputs cause,frame

  # continue an interrupted run (from runs/rg/last.pt)
  python -m train --config cfg.toml --resume

  # GPU: bf16 autocast and torch.compile; several GPUs / nodes with torchrun
  python -m train --config cfg.toml --device cuda --amp bf16 --compile
  torchrun --nproc_per_node 4 -m train --config cfg.toml

config file (TOML; every flag below is a key, command-line flags win):
{toml}

outputs in --out: best.pt, last.pt (relaxflow checkpoints; load with
surrogate.load_model) and metrics.jsonl (one JSON line per epoch). --overwrite keeps
the old run until the new one has written its first checkpoint. One process owns --out
at a time: a second run into it is refused (exit 2).
environment: RELAXFLOW_CHECKPOINT_KEY, when set, signs every checkpoint with an HMAC
(surrogate.load(path, key=...) and relaxflow-evaluate then verify it).
""".format(toml=textwrap.indent(TOML_EXAMPLE, "  ").rstrip())


def _opt_int(s: str) -> int | None:
    return None if s.lower() in ("none", "off") else int(s)


def _opt_float(s: str) -> float | None:
    return None if s.lower() in ("none", "off") else float(s)


def _heldout(s: str) -> str | list[int]:
    if s in ("auto", "none"):
        return s
    try:
        return [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--heldout takes 'auto', 'none' or sim indices like 0,5,9; got {s!r}") from None


def _names(s: str) -> list[str]:
    if s.strip().lower() in ("none", ""):
        return []
    return [v.strip() for v in s.split(",") if v.strip()]


FIELDS = ("u", "v", "density")


def _fields(s: str) -> dict[str, Any]:
    """``u,v`` -> the layout of those channels (``u, v`` one vector field)."""
    names = _names(s)
    if not names or any(n not in FIELDS for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"--fields takes distinct names of {', '.join(FIELDS)}, e.g. u,v; got {s!r}")
    if ("u" in names) != ("v" in names):
        raise argparse.ArgumentTypeError(f"--fields needs both velocity components u and v "
                                         f"or neither; got {s!r}")
    return {"channels": names, "vectors": [["u", "v"]] if "u" in names else []}


def _kv(s: str) -> tuple[str, Any]:
    if "=" not in s:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {s!r}")
    k, v = s.split("=", 1)
    words = {"true": True, "false": False, "none": None, "null": None}
    if v.strip().lower() in words:  # True/False/None as Python writes them, too
        return k.strip(), words[v.strip().lower()]
    try:
        return k.strip(), json.loads(v)
    except json.JSONDecodeError:
        return k.strip(), v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, argument_default=argparse.SUPPRESS, epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a relaxflow surrogate autoregressively on simulated smoke "
                    "plumes (multi-step loss, early stopping, resumable, DDP-ready).")
    for add_group in (_data_args, _model_args, _training_args, _split_args, _hardware_args):
        add_group(p)
    return p


def _data_args(p: argparse.ArgumentParser) -> None:
    """Data files, the run folder, resume/overwrite and data loading."""
    g = p.add_argument_group("data and output")
    g.add_argument("--preset", metavar="NAME",
                   help="start from a named recipe (cpu: the 2-core recipe of the demo "
                        "and benchmarks); --config and flags win over it")
    g.add_argument("--config", metavar="TOML", help="read options from a TOML file")
    g.add_argument("--data", nargs="+", metavar="NC",
                   help="dataset file(s), concatenated along sim")
    g.add_argument("--out", metavar="DIR", help="run directory (default runs/train)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in OUT")
    g.add_argument("--in-memory", choices=("auto", "yes", "no"),
                   help="load data into memory (auto: when it fits)")
    g.add_argument("--max-memory-gb", type=float,
                   help="memory budget for --in-memory auto (default 8)")
    g.add_argument("--num-workers", type=int, help="DataLoader workers")


def _model_args(p: argparse.ArgumentParser) -> None:
    """The model and its build_model options (generated from ModelConfig)."""
    g = p.add_argument_group("model (other options: --model-opt KEY=VALUE)")
    g.add_argument("--model", help=", ".join(MODELS) + " (default unet)")
    for name, default, text in ModelConfig.cli_options():  # one flag per option
        if name == "breaking_inputs":
            g.add_argument("--breaking-inputs", type=_names, metavar="NAMES",
                           help="symmetry-breaking inputs, comma-separated: frame (global "
                                "axes), cause (buoyancy and masks from the data), coords "
                                "(x, y); 'none' for none")
        else:
            g.add_argument("--" + name.replace("_", "-"), type=type(default),
                           help=f"{text} ({default})")
    g.add_argument("--fields", dest="layout", type=_fields, metavar="NAMES",
                   help="fields the model is given and predicts: u,v,density (default) or "
                   "u,v (velocity only, the paper's observation model: the density that "
                   "drives the buoyancy is never shown)")
    g.add_argument("--model-opt", action="append", type=_kv, metavar="KEY=VALUE",
                   help="any other build_model option (JSON value)")


def _training_args(p: argparse.ArgumentParser) -> None:
    """Optimisation, the training recipe and validation."""
    g = p.add_argument_group("training")
    g.add_argument("--T-in", "--t-in", type=int, help=f"input frames ({ModelConfig.T_in})")
    g.add_argument("--K", "--k", type=int, help="autoregressive loss steps (6)")
    g.add_argument("--batch-size", type=int, help="per process (16)")
    g.add_argument("--epochs", type=int, help="maximum epochs (50)")
    g.add_argument("--lr", type=float, help="AdamW learning rate (1e-3)")
    g.add_argument("--weight-decay", type=float, help="(4e-4)")
    g.add_argument("--lr-decay", type=float,
                   help="lr factor every --lr-step-epochs epochs (0.95; --schedule step)")
    g.add_argument("--lr-step-epochs", type=int, help="(1)")
    g.add_argument("--grad-clip", type=_opt_float, help="max gradient norm, or 'none' (1.0)")
    g.add_argument("--patience", type=_opt_int,
                   help="early-stopping patience in epochs, or 'none' (10)")
    g.add_argument("--pushforward", action=argparse.BooleanOptionalAction,
                   help="feed back detached predictions (push-forward trick)")
    g.add_argument("--targets", choices=("delta", "state"),
                   help="delta: predict normalised one-step differences (default); state: "
                   "residuals in normalised state units")
    g.add_argument("--persistence-init", action=argparse.BooleanOptionalAction,
                   help="zero the output head so the untrained model is persistence (on)")
    g.add_argument("--noise", type=float, help="std of the training noise on the input "
                   "history, in units of one step's change (0.5; 0 = off)")
    g.add_argument("--schedule", choices=("cosine", "step"),
                   help="cosine: warm-up + cosine decay per step (default); step: "
                   "--lr-decay every --lr-step-epochs")
    g.add_argument("--warmup", type=float, help="warm-up fraction of all steps (0.05)")
    g.add_argument("--ema", type=_opt_float, help="weight EMA decay, or 'none'")
    g.add_argument("--curriculum", action=argparse.BooleanOptionalAction,
                   help="grow the unrolled loss from 1 to K steps over half the epochs")
    g.add_argument("--nonnegative", action=argparse.BooleanOptionalAction,
                   help="forecasts bound scalar fields that are never negative in the "
                   "train split (density) below by 0 (on)")
    g.add_argument("--loss-weight", dest="loss_weights", action="append", type=_kv,
                   metavar="CHANNEL=W", help="weight of a field in the loss (repeatable; "
                   "a vector field's components take one weight each, e.g. "
                   "--loss-weight u=1 --loss-weight v=1); default 1")
    g.add_argument("--valid-steps", type=int, help="rollout steps of the valid RMSE (default K)")
    g.add_argument("--max-steps-per-epoch", type=_opt_int)
    g.add_argument("--seed", type=int, help="(0)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="tqdm bar and per-epoch lines on stderr (on)")


def _split_args(p: argparse.ArgumentParser) -> None:
    """Which windows form the train / valid / test splits."""
    g = p.add_argument_group("splits")
    g.add_argument("--split", dest="split_preset", choices=("auto", "paper", "custom"),
                   help="auto: the paper's frame ranges for 310-frame data, else fractions")
    g.add_argument("--heldout", type=_heldout,
                   help="test-domain sims: auto, none or indices like 0,5,9")
    g.add_argument("--skip", type=int, help="initial frames skipped (2)")
    g.add_argument("--test-steps", type=int,
                   help="rollout horizon recorded for the test splits (20)")


def _hardware_args(p: argparse.ArgumentParser) -> None:
    """Device, precision and compilation."""
    g = p.add_argument_group("hardware")
    g.add_argument("--device", help=f"{DEVICE_HELP} (auto)")
    g.add_argument("--amp", choices=("none", "bf16"), help="autocast precision (none)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="torch.compile the model")


_MODEL_KEYS = tuple(name for name, _, _ in ModelConfig.cli_options())
_SPLIT_KEYS = {"split_preset": "preset", "heldout": "heldout", "skip": "skip",
               "test_steps": "test_steps"}


def args_to_config(ns: argparse.Namespace):
    """Defaults < preset < TOML file < command-line flags."""
    from .presets import preset
    args = vars(ns).copy()
    name, path = args.pop("preset", None), args.pop("config", None)
    base = preset(name) if name is not None else {}
    if path is not None:
        base = merge_overrides(base, read_toml(path))
    overrides: dict[str, Any] = {}
    model_cfg = {k: args.pop(k) for k in (*_MODEL_KEYS, "layout") if k in args}
    model_cfg.update(dict(args.pop("model_opt", [])))
    if model_cfg:
        overrides["model_config"] = model_cfg
    if "loss_weights" in args:
        overrides["loss_weights"] = dict(args.pop("loss_weights"))
    split = {v: args.pop(k) for k, v in _SPLIT_KEYS.items() if k in args}
    if split:
        overrides["split"] = split
    overrides.update(args)
    return config_from_dict(merge_overrides(base, overrides))


def _rerun(cfg) -> str:
    """How to go on after a run stopped by a full disk (its checkpoints so far kept)."""
    out = Path(cfg.out)
    if cfg.overwrite:  # before its first checkpoint the old run is still in place
        return "run the same command again"
    if (out / "last.pt").is_file():
        return f"continue with --resume (from {out / 'last.pt'})"
    if (out / "best.pt").is_file():
        return "start again with --overwrite (no last.pt was written to resume from)"
    return "run the same command again"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    from surrogate.checkpoint import CheckpointError
    from surrogate.diskfull import DiskFullError

    from .data import DataError
    from .loop import TrainingError, fit

    try:
        cfg = args_to_config(ns)
        if not cfg.data:
            raise ConfigError("no data given: pass --data FILE [FILE ...] or set data in "
                              "the --config file")
        best = fit(cfg, key=os.environ.get(KEY_ENV) or None)
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except DiskFullError as e:  # nothing half-written is left; earlier checkpoints stay
        print(f"{PROG}: error: {e}; free some space, then {_rerun(cfg)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    print(best)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

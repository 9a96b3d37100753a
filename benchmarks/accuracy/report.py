"""The report: markdown (settings, tables, verdicts), CSV, JSON and the sweep plot."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import platform
import time
from pathlib import Path

from . import log, now, write_json, write_text
from .plan import SPLITS, SWEEP_MODELS, Plan, Settings
from .run import RunOutcome, persistence_baselines
from .tables import SECTIONS, Agg, Base, collect, mean_std


def machine(device: str) -> str:
    """The machine in words: the GPU when running on CUDA, else cores and CPU model."""
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    from bench_models import machine_name
    cpu = machine_name(torch.device("cpu"))
    gpu = "GPU present but unused" if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core CPU ({cpu}), {gpu}"


def versions() -> str:
    """The versions of torch, python and (when installed) phiflow."""
    import torch
    v = f"torch {torch.__version__}, python {platform.python_version()}"
    try:
        import phi
        v += f", phiflow {phi.__version__}"
    except Exception:
        pass
    return v


@dataclasses.dataclass
class Report:
    """Everything the report files are made from."""
    st: Settings
    plan: Plan
    out: RunOutcome
    base: Base
    agg: Agg
    total: float
    versions: str
    cmd: str
    base_velocity: Base = dataclasses.field(default_factory=dict)  # persistence, u and v
    agg_velocity: Agg = dataclasses.field(default_factory=dict)   # velocity RMSE per seed

    @property
    def failed(self) -> list[dict]:
        """The failed runs' records."""
        return [r for r in self.out.results if "error" in r]

    @property
    def main_scenarios(self) -> list[str]:
        """The main study's scenarios (none when the main study is not run)."""
        return [s for s in self.st.scenarios if "main" in self.st.studies]


def _header(rep: Report) -> list[str]:
    """Title, date, machine, versions, command and wall times."""
    st, jobs, failed, results = rep.st, rep.st.jobs, rep.failed, rep.out.results
    n_reused = sum(1 for r in results if r.get("reused"))
    run_sum = sum(r.get("seconds", 0.0) for r in results)
    return [f"# Accuracy benchmark ({st.scale_name} scale)", "",
            f"- date: {now()}",
            f"- machine: {machine(st.device)}; {jobs} parallel training processes x "
            f"{st.threads} torch thread(s); device {st.device}",
            f"- {rep.versions}",
            f"- command: `{rep.cmd}`",
            f"- total wall time: {rep.total / 60:.1f} min (data {rep.out.t_data:.0f} s, "
            f"training + evaluation {rep.out.t_runs / 60:.1f} min; {len(rep.plan.tasks)} runs, "
            f"{n_reused} reused from the cache"
            f"{f', {len(failed)} failed' if failed else ''})",
            f"- compute: the runs' own wall times sum to {run_sum / 60:.1f} min (cached runs "
            f"count the time they took when they ran), i.e. about {run_sum / 60 / jobs:.1f} "
            f"min on {jobs} parallel processes without the cache"]


def _steps_note(results: list[dict], steps: int) -> str:
    """Where the data were too short for ``steps``-step rollouts: the steps used instead."""
    used = {sp: {r["scores"][sp]["steps"] for r in results if "error" not in r}
            for sp in SPLITS}
    short = {sp: sorted(v) for sp, v in used.items() if v and v != {steps}}
    return ("" if not short else " (the data are too short for that on " + "; ".join(
        f"{sp}: {', '.join(map(str, v))} steps, the longest they allow"
        for sp, v in short.items()) + ")")


def _schedule(tr: dict) -> str:
    """The learning-rate schedule of the scale's training settings, in words (``lr_decay``
    applies to the step schedule only)."""
    schedule = (tr.get("recipe") or {}).get("schedule", "step")
    return (f"decay {tr['lr_decay']}/epoch" if schedule == "step"
            else f"{schedule} schedule over the epochs")


def _settings(rep: Report) -> list[str]:
    """The settings section: data (one line per dataset), models, training, splits, score."""
    scale, seeds = rep.st.scale, rep.st.seeds
    data, tr, ev = scale["data"], scale["train"], scale["eval"]
    md = ["", "## Settings", "",
          f"- data: PhiFlow smoke plumes {data['resolution']}x{data['resolution']}, "
          f"{data['steps']} solver steps stored every {data['save_every']} "
          f"({data['steps'] // data['save_every'] + 1} frames):"]
    for d in rep.plan.djobs:
        i = rep.out.dinfo.get(d.key, {})
        extra = {k: v for k, v in d.params.items() if k not in data}
        md.append(f"  - `{d.key}` ({extra}): {i.get('sims')} simulations, "
                  f"{i.get('heldout')} held out for test-domain"
                  + (f"; data equivariance error {i['data_equivariance_error']:.4f}"
                     if i.get("data_equivariance_error") is not None else "")
                  + (f"; observability: {i['observability']}" if i.get("observability")
                     else ""))
    windows = ("all" if ev["max_windows"] is None else
               "at most %d evenly spread" % ev["max_windows"])
    return md + [
        f"- models: U-Net depth {scale['model']['depth']}, kernel 3, group C4, hidden "
        f"chosen by `surrogate.width_for_params` for ~{scale['model']['params']:,} "
        "parameters (hidden counts fields; exact counts in the tables)",
        f"- training: `train.fit`, T_in {tr['T_in']}, K {tr['K']} (autoregressive loss), "
        f"batch {tr['batch_size']}, AdamW lr {tr['lr']} ({_schedule(tr)}, "
        f"weight decay 4e-4, grad clip 1), {tr['epochs']} epochs"
        + (f" of at most {tr['max_steps_per_epoch']} steps" if tr['max_steps_per_epoch']
           else "")
        + (f", early stopping patience {tr['patience']}" if tr['patience'] else
           ", no early stopping")
        + "; the checkpoint with the best valid RMSE ("
        + f"{tr.get('valid_steps') or tr['K']}-step rollouts) is scored"
        + (f"; recipe {tr['recipe']}" if tr.get("recipe") else ""),
        f"- splits (`train.SplitConfig(preset='{tr['split_preset']}')`, from each "
        "checkpoint): train/valid/test-future = start times 0-52% / 52-65% / 65-81% of the "
        "training simulations, test-domain = starts 0-33% of the held-out simulations"
        if tr["split_preset"] != "paper" else
        "- splits: the paper's (skip 2 frames; starts train 0-159, valid 160-199, "
        "test-future 200-249; test-domain 0-99 on held-out runs)",
        f"- score: RMSE over u, v and density (physical units) of {ev['steps']}-step "
        f"rollouts{_steps_note(rep.out.results, ev['steps'])}, history excluded; per run "
        f"the mean over {windows} windows of the split; tables give mean ± sample std "
        f"over {len(seeds)} seed(s) (seeds {seeds}); bold = lowest mean in the column. "
        "Velocity-only RMSE and VRMSE per run are in the CSV; the ratio tables divide "
        "both RMSEs by persistence's on the same windows.",
        "- persistence: the last given frame repeated, on the same windows"]


def markdown(rep: Report) -> list[str]:
    """The lines of ``accuracy_<scale>.md``: header, settings, each study's section."""
    md = _header(rep) + _settings(rep)
    for study, section in SECTIONS.items():
        if study in rep.st.studies:
            md += section(rep)
    if rep.failed:
        md += ["", "## Failed runs", ""]
        md += [f"- {r['data_key']} {r['label']} seed {r['seed']}: {r['error']}"
               for r in rep.failed]
    if rep.plan.notes:
        md += ["", "Notes: " + "; ".join(rep.plan.notes)]
    return md


_CSV_HEADER = ["study", "data", "label", "model", "breaking_inputs", "seed", "hidden",
               "params", "split", "rmse", "rmse_velocity", "vrmse", "n_windows",
               "best_epoch", "train_seconds", "error"]


def _csv_rows(r: dict) -> list[list]:
    """The CSV rows of one run: one per split, or one with the error."""
    head = [r["study"], r["data_key"], r["label"], r["model"], "+".join(r["breaking_inputs"]),
            r["seed"]]
    if "error" in r:
        return [head + [""] * 9 + [r["error"]]]
    rows = []
    for s in SPLITS:
        sc = r["scores"][s]
        rows.append(head + [r["hidden"], r["params"], s, f"{sc['rmse']:.6g}"]
                    + ["" if sc[k] is None else f"{sc[k]:.6g}" for k in ("rmse_velocity", "vrmse")]
                    + [sc["n_windows"], r["best_epoch"], f"{r['train_seconds']:.1f}", ""])
    return rows


def write_csv(path: Path, results: list[dict], base: Base, base_vel: Base) -> None:
    """Write ``accuracy_<scale>.csv``: one row per run and split, then persistence."""
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(_CSV_HEADER)
    for r in sorted(results, key=lambda r: (r["data_key"], r["label"], r["seed"])):
        w.writerows(_csv_rows(r))
    for k, b in base.items():
        for s in SPLITS:
            v = base_vel.get(k, {}).get(s, math.nan)
            w.writerow(["baseline", k, "persistence", "persistence", "", "", "", 0, s,
                        f"{b[s]:.6g}", "" if math.isnan(v) else f"{v:.6g}"] + [""] * 5)
    write_text(path, f.getvalue())


def summary(rep: Report) -> dict:
    """The content of ``accuracy_<scale>.json``: settings, datasets, aggregates, runs."""
    st, out = rep.st, rep.out
    return {
        "scale": st.scale_name, "date": now(), "machine": machine(st.device),
        "versions": rep.versions, "command": rep.cmd, "settings": st.scale,
        "studies": st.studies, "scenarios": rep.main_scenarios, "models": st.models,
        "seeds": st.seeds, "jobs": st.jobs, "threads": st.threads, "device": st.device,
        "wall_seconds": {"total": rep.total, "data": out.t_data, "runs": out.t_runs},
        "datasets": out.dinfo, "persistence": rep.base,
        "persistence_velocity": rep.base_velocity,
        "breaking_inputs_available": rep.plan.inputs_ok,
        "breaking_inputs_note": rep.plan.why,
        "aggregate": {f"{k[0]}|{k[1]}": {s: dict(zip(("mean", "std", "n"), mean_std(v)))
                                         for s, v in d.items()} for k, d in rep.agg.items()},
        "runs": out.results,
    }


def sweep_plot(rep: Report, path: Path) -> None:
    """Plot RMSE against breaking level per split (plain, strict, relaxed, persistence)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = [d for d in rep.plan.djobs if d.level is not None]
    if not sweep:
        return
    levels = [d.level for d in sweep]
    ms = [m for m in SWEEP_MODELS if m in rep.st.models]
    steps = rep.st.scale["eval"]["steps"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    style = {"unet": ("plain (unet)", "tab:gray", "o"),
             "gconv_unet": ("strict (gconv_unet)", "tab:blue", "s"),
             "relaxed_gconv_unet": ("relaxed (relaxed_gconv_unet)", "tab:red", "^")}
    for ax, split in zip(axes, SPLITS):
        for m in ms:
            st = [mean_std(rep.agg.get((d.key, m), {}).get(split, [])) for d in sweep]
            name, color, marker = style.get(m, (m, None, "o"))
            ax.errorbar(levels, [s[0] for s in st], yerr=[s[1] for s in st], label=name,
                        color=color, marker=marker, capsize=3)
        ax.plot(levels, [rep.base.get(d.key, {}).get(split, math.nan) for d in sweep], "k:",
                label="persistence")
        errs = [rep.out.dinfo.get(d.key, {}).get("data_equivariance_error") for d in sweep]
        ax.set_xticks(levels, [f"{lv:g}\n({e:.3f})" if e is not None else f"{lv:g}"
                               for lv, e in zip(levels, errs)])
        ax.set(xlabel="breaking level (data equivariance error)", title=split,
               ylabel=f"{split} RMSE, {steps}-step rollout")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"breaking_sweep, {rep.st.scale_name} scale: {steps}-step rollout RMSE, "
                 f"mean ± std over {len(rep.st.seeds)} seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(st: Settings, plan: Plan, out: RunOutcome, cmd: str, t_start: float
                  ) -> int:
    """Score persistence, write the markdown, CSV, JSON (and plot); 1 if a run failed."""
    base, base_vel = persistence_baselines(plan, out.results, st.scale["eval"])
    rep = Report(st, plan, out, base, collect(out.results), time.perf_counter() - t_start,
                 versions(), cmd, base_vel, collect(out.results, "rmse_velocity"))
    md = markdown(rep)
    md_path = st.out_dir / f"accuracy_{st.scale_name}.md"
    write_text(md_path, "\n".join(md) + "\n")
    write_csv(st.out_dir / f"accuracy_{st.scale_name}.csv", out.results, base, base_vel)
    write_json(st.out_dir / f"accuracy_{st.scale_name}.json", summary(rep))
    if "sweep" in st.studies:
        sweep_plot(rep, st.out_dir / f"accuracy_sweep_{st.scale_name}.png")
    log(f"wrote {md_path} (+ .csv, .json{', sweep plot' if 'sweep' in st.studies else ''}); "
        f"total {rep.total / 60:.1f} min")
    print("\n".join(md))
    return 1 if rep.failed else 0

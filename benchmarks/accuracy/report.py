"""The report: markdown (settings, tables, verdicts), CSV, JSON and the sweep plot."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import platform
import time
from pathlib import Path

from .common import log, now, write_json
from .plan import (INPUT_VARIANTS, SPLITS, SWEEP_MODELS, TABLE1_ROWS, DataJob, Plan,
                   Settings, table1_key)
from .run import RunOutcome, persistence_baselines
from .tables import (Agg, Base, ablation_table, collect, inputs_table, main_tables,
                     mean_std, ratio_tables, relaxation_table, sweep_table, verdicts)


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
    st, tasks, results = rep.st, rep.plan.tasks, rep.out.results
    jobs, failed = st.jobs, rep.failed
    n_reused = sum(1 for r in results if r.get("reused"))
    run_sum = sum(r.get("seconds", 0.0) for r in results)
    return [f"# Accuracy benchmark ({st.scale_name} scale)", "",
            f"- date: {now()}",
            f"- machine: {machine(st.device)}; {jobs} parallel training processes x "
            f"{st.threads} torch thread(s); device {st.device}",
            f"- {rep.versions}",
            f"- command: `{rep.cmd}`",
            f"- total wall time: {rep.total / 60:.1f} min (data {rep.out.t_data:.0f} s, "
            f"training + evaluation {rep.out.t_runs / 60:.1f} min; {len(tasks)} runs, "
            f"{n_reused} reused from the cache"
            f"{f', {len(failed)} failed' if failed else ''})",
            f"- compute: the runs' own wall times sum to {run_sum / 60:.1f} min (cached runs "
            f"count the time they took when they ran), i.e. about {run_sum / 60 / jobs:.1f} "
            f"min on {jobs} parallel processes without the cache"]


def _data_lines(rep: Report) -> list[str]:
    """The data settings: resolution and frames, then one line per dataset."""
    data = rep.st.scale["data"]
    md = [f"- data: PhiFlow smoke plumes {data['resolution']}x"
          f"{data['resolution']}, {data['steps']} solver steps stored "
          f"every {data['save_every']} "
          f"({data['steps'] // data['save_every'] + 1} frames):"]
    for d in rep.plan.djobs:
        i = rep.out.dinfo.get(d.key, {})
        extra = {k: v for k, v in d.params.items() if k not in data}
        md.append(f"  - `{d.key}` ({extra}): {i.get('sims')} simulations, "
                  f"{i.get('heldout')} held out for test-domain"
                  + (f"; data equivariance error {i['data_equivariance_error']:.4f}"
                     if i.get("data_equivariance_error") is not None else ""))
    return md


def _steps_note(results: list[dict], steps: int) -> str:
    """Where the data were too short for ``steps``-step rollouts: the steps used instead."""
    used: dict[str, set] = {sp: set() for sp in SPLITS}
    for r in results:
        for sp in SPLITS:
            if "error" not in r:
                used[sp].add(r["scores"][sp]["steps"])
    short = {sp: sorted(v) for sp, v in used.items() if v and v != {steps}}
    return ("" if not short else " (the data are too short for that on " + "; ".join(
        f"{sp}: {', '.join(map(str, v))} steps, the longest they allow"
        for sp, v in short.items()) + ")")


def _model_and_training_lines(scale: dict) -> list[str]:
    """The model size and the training settings."""
    tr = scale["train"]
    return [
        f"- models: U-Net depth {scale['model']['depth']}, kernel 3, group C4, hidden "
        f"chosen by `surrogate.width_for_params` for ~{scale['model']['params']:,} "
        "parameters (hidden counts fields; exact counts in the tables)",
        f"- training: `train.fit`, T_in {tr['T_in']}, K {tr['K']} (autoregressive loss), "
        f"batch {tr['batch_size']}, AdamW lr {tr['lr']} (decay {tr['lr_decay']}/epoch, "
        f"weight decay 4e-4, grad clip 1), {tr['epochs']} epochs"
        + (f" of at most {tr['max_steps_per_epoch']} steps" if tr['max_steps_per_epoch']
           else "")
        + (f", early stopping patience {tr['patience']}" if tr['patience'] else
           ", no early stopping")
        + "; the checkpoint with the best valid RMSE ("
        + f"{tr.get('valid_steps') or tr['K']}-step rollouts) is scored"
        + (f"; recipe {tr['recipe']}" if tr.get("recipe") else "")]


def _split_and_score_lines(rep: Report) -> list[str]:
    """The splits, the score (with the rollout length actually used) and persistence."""
    tr, ev = rep.st.scale["train"], rep.st.scale["eval"]
    seeds = rep.st.seeds
    return [
        f"- splits (`train.SplitConfig(preset='{tr['split_preset']}')`, from each "
        "checkpoint): train/valid/test-future = start times 0-52% / 52-65% / 65-81% of the "
        "training simulations, test-domain = starts 0-33% of the held-out simulations"
        if tr["split_preset"] != "paper" else
        "- splits: the paper's (skip 2 frames; starts train 0-159, valid 160-199, "
        "test-future 200-249; test-domain 0-99 on held-out runs)",
        f"- score: RMSE over u, v and density (physical units) of {ev['steps']}-step "
        f"rollouts{_steps_note(rep.out.results, ev['steps'])}, history excluded; per run "
        f"the mean over "
        f"{'all' if ev['max_windows'] is None else 'at most %d evenly spread' % ev['max_windows']}"
        " windows of the split; tables give mean ± sample std over "
        f"{len(seeds)} seed(s) (seeds {seeds}); bold = lowest mean in the column. "
        "Velocity-only RMSE and VRMSE per run are in the CSV; the ratio tables divide "
        "both RMSEs by persistence's on the same windows.",
        "- persistence: the last given frame repeated, on the same windows",
    ]


def _settings(rep: Report) -> list[str]:
    """The settings section."""
    return (["", "## Settings", ""] + _data_lines(rep)
            + _model_and_training_lines(rep.st.scale) + _split_and_score_lines(rep))


def _main_section(rep: Report) -> list[str]:
    """The five models at equal parameter count, with the relaxed-vs-others verdicts."""
    params = {}
    for t in rep.plan.tasks:
        if not t.breaking_inputs and not t.variant:
            params[t.model] = t.params
    md = ["", "## Five models at equal parameter count", ""]
    md += main_tables(rep.agg, rep.base, rep.main_scenarios, rep.st.models, params,
                      len(rep.st.seeds))
    md += ratio_tables(rep.agg, rep.agg_velocity, rep.base, rep.base_velocity,
                       rep.main_scenarios, rep.st.models, len(rep.st.seeds))
    md += ["Relaxed vs plain and vs its strict counterpart (relative change of the "
           "mean RMSE; negative = relaxed better):", ""]
    md += verdicts(rep.agg, rep.main_scenarios, rep.st.models)
    return md


def _sweep_section(rep: Report) -> list[str]:
    """The symmetry-breaking sweep table."""
    md = ["", "## Symmetry-breaking sweep (`breaking_sweep`)", "",
          f"One dataset per level; plot: `accuracy_sweep_{rep.st.scale_name}.png`.", ""]
    md += sweep_table(rep.agg, rep.base, rep.plan.djobs, rep.out.dinfo, rep.st.models,
                      len(rep.st.seeds))
    return md


def _inputs_section(rep: Report) -> list[str]:
    """The issue-7 table: breaking symmetry by inputs."""
    params_v = {}
    for lab, m, br in INPUT_VARIANTS:
        tt = next((t for t in rep.plan.tasks
                   if t.model == m and tuple(t.breaking_inputs) == br), None)
        params_v[lab] = tt.params if tt else None
    md = ["", "## Breaking symmetry by inputs (issue 7)", "",
          "Group-conv family: strict = `gconv_unet`, relaxed = `relaxed_gconv_unet`; "
          "`cause` = buoyancy vector + inflow/obstacle/open-wall masks from the "
          "dataset, `frame` = the global axes as vector fields, `coords` = x, y "
          "channels. Test-future / test-domain RMSE.", ""]
    md += inputs_table(rep.agg, rep.base, params_v, len(rep.st.seeds), rep.plan.inputs_ok,
                       rep.plan.why)
    return md


_ABLATION_INTRO = (
    "`relaxed L=2` is the default relaxed group conv (2 filter banks) at the "
    "common parameter target, so it is narrower than `strict`; `relaxed L=1` "
    "(one bank, one weight per group element and layer) is nearly as wide as "
    "`strict`; `relaxed L=2 @ strict width` has the strict model's hidden "
    "width and so more parameters. The relaxed steerable coefficients are "
    "w(y) = w_bar + relax_scale * delta(y) (default relax_scale 1, alpha "
    "1e-5); the variants change one of the two; `@ strict width` rows have "
    "the strict steerable model's width (per-position coefficients: about "
    "9x its parameters). Relaxation dev. (0 = exactly equivariant; "
    "`evaluate.relaxation_summary`, averaged over relaxed layers and seeds): "
    "for a relaxed group conv the spread over g (std) of the learned weights "
    "w_l(g) relative to their mean magnitude; for a relaxed steerable conv the "
    "spread of the kernel coefficients over kernel positions relative to their "
    "size. Test-future / test-domain RMSE.")
_RELAXATION_INTRO = (
    "Learned relaxation per dataset (the relaxed models of the other "
    "studies, at equal parameters): relaxation dev. as above for "
    "`relaxed_gconv_unet`; for `relaxed_steer_unet` the spread of the kernel "
    "coefficients over kernel positions relative to their size (0 = "
    "equivariant). Mean ± std over seeds. Data eq. error as in the settings "
    "(none for data without rotated partner runs).")


def _ablation_section(rep: Report) -> list[str]:
    """The ablation table and the learned relaxation per dataset."""
    nseeds = len(rep.st.seeds)
    md = ["", "## Ablation: what the relaxation buys", "", _ABLATION_INTRO, ""]
    md += ablation_table(rep.agg, rep.plan.tasks, nseeds)
    md += ["", _RELAXATION_INTRO, ""]
    md += relaxation_table(rep.plan.tasks, rep.out.dinfo, nseeds)
    return md


def _table1_section(rep: Report) -> list[str]:
    """The paper's Table 1 shape (issue 12): every baseline and relaxed model per
    scenario and split, persistence as the floor."""
    keys, params = [], {}
    for label, m, extra, _ in TABLE1_ROWS:
        key = table1_key(label, m, extra)
        keys.append(key)
        t = next((t for t in rep.plan.tasks if "table1" in t.study.split(",")
                  and t.model == m and (t.variant or t.model) == key), None)
        if t is not None:
            params[key] = t.params
    md = ["", "## The paper's Table 1 on one U-Net skeleton (issue 12)", "",
          "Rows: " + "; ".join(f"{label} = `{m}`" + (f" ({', '.join(k for k in extra)})"
                                                      if extra else "")
                               for label, m, extra, _ in TABLE1_ROWS)
          + ". `clc_unet` runs on `translation` only and cannot be sized to the common "
          "parameter target (its smallest width has more: see params). RMSE over all "
          "fields.", ""]
    md += main_tables(rep.agg, rep.base, rep.st.scenarios, keys, params, len(rep.st.seeds))
    md += ratio_tables(rep.agg, rep.agg_velocity, rep.base, rep.base_velocity,
                       rep.st.scenarios, keys, len(rep.st.seeds))
    return md


def markdown(rep: Report) -> list[str]:
    """The lines of ``accuracy_<scale>.md``."""
    studies = rep.st.studies
    md = _header(rep) + _settings(rep)
    if "main" in studies:
        md += _main_section(rep)
    if "sweep" in studies:
        md += _sweep_section(rep)
    if "inputs" in studies:
        md += _inputs_section(rep)
    if "ablation" in studies:
        md += _ablation_section(rep)
    if "table1" in studies:
        md += _table1_section(rep)
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
    if "error" in r:
        return [[r["study"], r["data_key"], r["label"], r["model"],
                 "+".join(r["breaking_inputs"]), r["seed"], "", "", "", "", "",
                 "", "", "", "", r["error"]]]
    rows = []
    for s in SPLITS:
        sc = r["scores"][s]
        rows.append([r["study"], r["data_key"], r["label"], r["model"],
                     "+".join(r["breaking_inputs"]), r["seed"], r["hidden"],
                     r["params"], s, f"{sc['rmse']:.6g}",
                     f"{sc['rmse_velocity']:.6g}" if sc["rmse_velocity"] is not None
                     else "", f"{sc['vrmse']:.6g}" if sc["vrmse"] is not None else "",
                     sc["n_windows"], r["best_epoch"], f"{r['train_seconds']:.1f}", ""])
    return rows


def write_csv(path: Path, results: list[dict], base: Base, base_vel: Base) -> None:
    """Write ``accuracy_<scale>.csv``: one row per run and split, then persistence."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(_CSV_HEADER)
        for r in sorted(results, key=lambda r: (r["data_key"], r["label"], r["seed"])):
            w.writerows(_csv_rows(r))
        for k, b in base.items():
            for s in SPLITS:
                v = base_vel.get(k, {}).get(s, math.nan)
                w.writerow(["baseline", k, "persistence", "persistence", "", "", "", 0, s,
                            f"{b[s]:.6g}", "" if math.isnan(v) else f"{v:.6g}", "", "", "",
                            "", ""])


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


def sweep_plot(agg: Agg, base: Base, djobs: list[DataJob], dinfo: dict[str, dict],
               models: list[str], path: Path, title: str, steps: int) -> None:
    """Plot RMSE against breaking level per split (plain, strict, relaxed, persistence)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = [d for d in djobs if d.level is not None]
    if not sweep:
        return
    levels = [d.level for d in sweep]
    ms = [m for m in SWEEP_MODELS if m in models]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    style = {"unet": ("plain (unet)", "tab:gray", "o"),
             "gconv_unet": ("strict (gconv_unet)", "tab:blue", "s"),
             "relaxed_gconv_unet": ("relaxed (relaxed_gconv_unet)", "tab:red", "^")}
    for ax, split in zip(axes, SPLITS):
        for m in ms:
            st = [mean_std(agg.get((d.key, m), {}).get(split, [])) for d in sweep]
            name, color, marker = style.get(m, (m, None, "o"))
            ax.errorbar(levels, [s[0] for s in st], yerr=[s[1] for s in st], label=name,
                        color=color, marker=marker, capsize=3)
        ax.plot(levels, [base.get(d.key, {}).get(split, math.nan) for d in sweep], "k:",
                label="persistence")
        errs = [dinfo.get(d.key, {}).get("data_equivariance_error") for d in sweep]
        ax.set_xticks(levels)
        ax.set_xticklabels([f"{lv:g}\n({e:.3f})" if e is not None else f"{lv:g}"
                            for lv, e in zip(levels, errs)])
        ax.set_xlabel("breaking level (data equivariance error)")
        ax.set_ylabel(f"{split} RMSE, {steps}-step rollout")
        ax.set_title(split)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(st: Settings, plan: Plan, out: RunOutcome, cmd: str, t_start: float
                  ) -> int:
    """Score persistence, write the markdown, CSV, JSON (and plot); 1 if a run failed."""
    ev = st.scale["eval"]
    base, base_vel = persistence_baselines(plan.djobs, plan.tasks, out.results, ev)
    agg = collect(out.results)
    rep = Report(st, plan, out, base, agg, time.perf_counter() - t_start, versions(), cmd,
                 base_vel, collect(out.results, "rmse_velocity"))
    md = markdown(rep)
    md_path = st.out_dir / f"accuracy_{st.scale_name}.md"
    md_path.write_text("\n".join(md) + "\n")
    write_csv(st.out_dir / f"accuracy_{st.scale_name}.csv", out.results, base, base_vel)
    write_json(st.out_dir / f"accuracy_{st.scale_name}.json", summary(rep))
    if "sweep" in st.studies:
        sweep_plot(agg, base, plan.djobs, out.dinfo, st.models,
                   st.out_dir / f"accuracy_sweep_{st.scale_name}.png",
                   f"breaking_sweep, {st.scale_name} scale: {ev['steps']}-step rollout "
                   f"RMSE, mean ± std over {len(st.seeds)} seeds", ev["steps"])
    log(f"wrote {md_path} (+ .csv, .json{', sweep plot' if 'sweep' in st.studies else ''}); "
        f"total {rep.total / 60:.1f} min")
    print("\n".join(md))
    return 1 if rep.failed else 0

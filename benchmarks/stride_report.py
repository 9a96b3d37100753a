"""The stride study's report (``bench_stride.py``): markdown and figure from its JSON."""

from __future__ import annotations

from pathlib import Path

from frontier_report import batch_words, rollout_path


def largest_2x_stride(rows: list[dict], split: str = "test-domain/velocity") -> int | None:
    """The largest stride at which the best model of that stride is at most 0.5 x
    persistence on ``split``."""
    ok = [r["stride"] for r in rows if r[split] <= 0.5]
    return max(ok) if ok else None


def _budgets(params: int | list[int]) -> str:
    """``60,000`` or ``60,000 and 20,000`` (older reports ran one budget)."""
    return " and ".join(f"{p:,}" for p in (params if isinstance(params, list) else [params]))


def markdown(data: dict) -> str:
    m, sim = data["meta"], data["simulator"]
    L = ["# The stride study", "",
         f"Measured {m['date']} on {m['machine']}, torch {m['torch']}. One dataset "
         f"(`{Path(m['data']).name}`) thinned to each stride; every model trained with the "
         f"`cpu` preset at `T_in` {m['T_in']} (same compute at every stride), ~"
         f"{_budgets(m['params'])} parameters, seed {m['seed']}; scored over the same "
         f"{m['horizon']} solver steps (horizon / stride frames) against persistence on the "
         f"same windows. Speed: `Surrogate.rollout` frames/s ({rollout_path(m)}, "
         f"{batch_words(m.get('batch', 32))}) x stride = "
         "solver steps advanced per second"
         + (f"; the simulator's best at 32x32: {sim['fps']:.0f} solver steps/s (batch "
            f"{sim['batch']}, float{sim['precision']})." if sim else ".")
         + (f" Command: `{m['command']}`." if m.get("command") else ""), "",
         "| stride | model | params | MFLOP/frame | frames | test-domain velocity / all "
         "| test-future velocity / all | solver steps/s | vs simulator |", "|---" * 9 + "|"]
    for r in sorted(data["rows"], key=lambda r: (r["stride"], r["model"], -r["params"])):
        vs = f"{r['solver_steps_per_s'] / sim['fps']:.1f}x" if sim else "–"
        L.append(f"| {r['stride']} | {r['model']} | {r['params']:,} | "
                 f"{r['flops_per_frame'] / 1e6:.1f} | {r['steps']} | "
                 f"{r['test-domain/velocity']:.3f} / {r['test-domain/all']:.3f} | "
                 f"{r['test-future/velocity']:.3f} / {r['test-future/all']:.3f} | "
                 f"{r['solver_steps_per_s']:.0f} | {vs} |")
    k = largest_2x_stride(data["rows"])
    L += ["", "The largest stride at which the best model still beats persistence by 2x on "
          f"test-domain (velocity): {k if k is not None else 'none of those measured'}."]
    return "\n".join(L) + "\n"


def figure(data: dict, path: Path) -> None:
    """Test-domain velocity ratio against solver steps advanced per second, one point per
    model and stride; the simulator's best as a vertical line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, budget in sorted({(r["model"], r.get("params_target")) for r in data["rows"]},
                                key=str):
        rs = sorted((r for r in data["rows"] if r["model"] == model
                     and r.get("params_target") == budget), key=lambda r: r["stride"])
        ax.plot([r["solver_steps_per_s"] for r in rs], [r["test-domain/velocity"] for r in rs],
                "o-", label=f"{model}, {rs[0]['params']:,} params")
        for r in rs:
            ax.annotate(f"x{r['stride']}", (r["solver_steps_per_s"], r["test-domain/velocity"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    if data["simulator"]:
        ax.axvline(data["simulator"]["fps"], color="k", ls="--", label="simulator (best)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("solver steps advanced per second (32x32)")
    ax.set_ylabel("test-domain velocity RMSE / persistence")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

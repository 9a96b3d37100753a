"""The speed-accuracy frontier's report (``bench_frontier.py``): from its JSON to
markdown, so that a committed result regenerates without rerunning anything."""

from __future__ import annotations

#: the goals the frontier is judged by: a model at most this ratio to persistence on
#: test-domain (velocity) should run this many times the simulator's best, per grid size
USEFUL = 0.2
GOAL = {32: 5.0, 64: 10.0}


def best_simulator(rows: list[dict]) -> dict | None:
    """The fastest converged simulator configuration of ``rows``."""
    ok = [r for r in rows if r.get("fps")]
    return max(ok, key=lambda r: r["fps"]) if ok else None


def _f(v, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def rollout_path(m: dict) -> str:
    """How the rollouts ran (older reports: the export, untraced)."""
    return "exported, traced and frozen" if m.get("frozen") else "exported"


def batch_words(b: int | list[int]) -> str:
    """``batch 32`` or ``the fastest of batch 32 and 128 per model`` (an int: older
    reports)."""
    if isinstance(b, int) or len(b) == 1:
        return f"batch {b if isinstance(b, int) else b[0]}"
    return ("the fastest of batch " + ", ".join(map(str, b[:-1])) + f" and {b[-1]}"
            " per model")


def markdown(data: dict) -> str:
    """The report: conditions, the simulator search, the trained models at 32x32 with
    their accuracy, the randomly initialised models at other sizes, and the verdict."""
    m = data["meta"]
    sims = {int(k): v for k, v in data["simulator"].items()}
    L = ["# Speed at useful accuracy", "",
         f"Measured {m['date']} on {m['machine']} ({m['cpu_count']} cores, {m['threads']} "
         f"torch threads), torch {m['torch']}, side by side in one run. Surrogates: trained "
         f"checkpoints through `Surrogate.rollout` ({rollout_path(m)}), "
         f"{batch_words(m['batch'])}, "
         f"{m['frames']}-frame rollouts, best of the repetitions; one frame advances "
         "`save_every` solver steps, so 'solver steps/s' is frames/s x save_every. "
         f"Simulator: `symmetric` plumes, whole {m['sim_steps']}-step runs, batched and "
         "jit-compiled, per batch size and CG precision (frames/s = solver steps x "
         "simulations per second). Ratios: RMSE over persistence's on the same windows. "
         f"Peak: an fp32 estimate of {m['peak_flops'] / 1e9:.0f} GFLOP/s for the threads "
         "used (clock x 32 FLOP per cycle per core).", ""]
    for size, rows in sorted(sims.items()):
        L += [f"## Simulator at {size}x{size}", "", "| batch | CG precision | frames/s |",
              "|---:|---:|---:|"]
        L += [f"| {r['batch']} | {r['precision']} | "
              f"{_f(r.get('fps'), '.0f') if r.get('fps') else 'failed: ' + r.get('note', '')} |"
              for r in rows]
        L.append("")
    ref = best_simulator(sims.get(32, []))
    L += ["## Trained models at 32x32", "",
          "| data | model | params | T_in | test-domain velocity / all | test-future "
          "velocity / all | frames/s | solver steps/s | vs simulator best | MFLOP/frame | "
          "achieved GFLOP/s (% of peak) |", "|---" * 11 + "|"]
    rows = sorted(data["runs"], key=lambda r: r["test-domain/velocity"])
    for r in rows:
        steps = r["fps"] * data["save_every"].get(r["data"], 1)
        gflops = r["fps"] * r["flops_per_frame"] / 1e9
        L.append(f"| {r['data']} | {r['label']} | {r['params']:,} | {r['T_in']} | "
                 f"{r['test-domain/velocity']:.3f} / {r['test-domain/all']:.3f} | "
                 f"{r['test-future/velocity']:.3f} / {r['test-future/all']:.3f} | "
                 f"{r['fps']:.0f} | {steps:.0f} | "
                 f"{_f(steps / ref['fps'] if ref else None, '.1f')}x | "
                 f"{r['flops_per_frame'] / 1e6:.1f} | {gflops:.1f} "
                 f"({100 * gflops * 1e9 / m['peak_flops']:.0f}%) |")
    L.append("")
    for size in sorted(s for s in sims if s != 32):
        ref_s = best_simulator(sims[size])
        L += [f"## Randomly initialised models at {size}x{size} (speed only)", "",
              "| model | frames/s | vs simulator best (save_every 2) | MFLOP/frame |",
              "|---|---:|---:|---:|"]
        for r in data["random"]:
            if r["size"] == size:
                L.append(f"| {r['model']} | {r['fps']:.0f} | "
                         f"{_f(2 * r['fps'] / ref_s['fps'] if ref_s else None, '.1f')}x | "
                         f"{r['flops_per_frame'] / 1e6:.1f} |")
        L.append("")
    L += ["## Verdict", "", verdict(data, ref)]
    return "\n".join(L) + "\n"


def verdict(data: dict, ref: dict | None) -> str:
    """One sentence: the fastest model at most :data:`USEFUL` x persistence on
    test-domain velocity, against the 32x32 goal."""
    useful = [r for r in data["runs"] if r["test-domain/velocity"] <= USEFUL]
    if not useful or ref is None:
        return "No trained model reaches the useful accuracy, or the simulator failed."
    best = max(useful, key=lambda r: r["fps"] * data["save_every"].get(r["data"], 1))
    x = best["fps"] * data["save_every"].get(best["data"], 1) / ref["fps"]
    met = "meets" if x >= GOAL[32] else "misses"
    return (f"At 32x32 the fastest model at <= {USEFUL} x persistence on test-domain "
            f"velocity ({best['label']} on {best['data']}, {best['test-domain/velocity']:.3f}) "
            f"advances {x:.1f}x the simulated time per second of the simulator's best "
            f"configuration (batch {ref['batch']}, float{ref['precision']}): it {met} the "
            f"{GOAL[32]:g}x goal.")

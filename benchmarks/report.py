"""Aggregate benchmark runs: mean ± std per variant and task, change vs the upstream default."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.experiments import Experiment, control_of, is_control, is_peer


def summarise(exp: Experiment, runs: list[dict]) -> list[dict]:
    rows = []
    for task in exp.tasks:
        for variant in exp.variants:
            maes = [r["test_mae"] for r in runs if r["variant"] == variant.label
                    and r["task"] == task and "error" not in r]
            failed = sum(1 for r in runs if r["variant"] == variant.label and r["task"] == task
                         and "error" in r)
            if not maes and not failed:
                continue
            rows.append({
                "task": task, "variant": variant.label, "upstream": variant.upstream,
                "table": variant.table, "mode": variant.mode,
                "n_runs": len(maes), "n_failed": failed,
                "mean": float(np.mean(maes)) if maes else None,
                "std": float(np.std(maes, ddof=1)) if len(maes) > 1 else None,
                "paper": variant.paper.get(task),
            })
    _add_relative_change(exp, rows, runs)
    return rows


def _add_relative_change(exp: Experiment, rows: list[dict], runs: list[dict]) -> None:
    for row in rows:
        base = exp.baseline(row["upstream"])
        ref = next((r for r in rows if base and r["variant"] == base.label
                    and r["task"] == row["task"]), None)
        ok = ref and ref["mean"] and row["mean"] is not None
        row["vs_default"] = (row["mean"] / ref["mean"] - 1) if ok else None
        diffs = _paired_differences(runs, row, base.label) if ok else []
        row["paired_diff_mean"] = float(np.mean(diffs)) if diffs else None
        row["paired_diff_std"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None


def _paired_differences(runs: list[dict], row: dict, baseline: str) -> list[float]:
    """MAE minus the baseline's MAE on the same seed, i.e. the same split and initial seed."""
    def by_seed(label: str) -> dict[int, float]:
        return {r["seed"]: r["test_mae"] for r in runs
                if r["variant"] == label and r["task"] == row["task"] and "error" not in r}

    mine, base = by_seed(row["variant"]), by_seed(baseline)
    return [mine[s] - base[s] for s in sorted(mine.keys() & base.keys())]


def markdown(result: dict) -> str:
    scale = result["scale"]
    lines = [
        f"## {result['title']}", "",
        f"Scale `{scale['name']}`{' (scaled down)' if result['scaled_down'] else ''}; "
        f"{protocol_label(result, scale['epochs'])}; seeds {_seeds(result['seeds'])}; "
        f"commit `{result['commit'][:10]}`.",
        "Data: " + "; ".join(f"{t}: {d['n_records']} records ({d['source']})"
                             for t, d in result["data"].items()),
        "", result["notes"], "",
        "| task | variant | test MAE (mean ± std) | vs default | paired diff (± std) | runs | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["summary"]:
        failed = f" ({row['n_failed']} failed)" if row["n_failed"] else ""
        paper = row["paper"] if row["paper"] is not None else "–"
        lines.append(
            f"| {row['task']} | {row['variant']} | {_mean_std(row)} | {_pct(row['vs_default'])} "
            f"| {_diff(row)} | {row['n_runs']}{failed} | {paper} |"
        )
    skipped = [f"- not run: *{label}* ({reason})" for label, reason in result.get("skipped", {}).items()]
    return "\n".join(lines + ["", *verdicts(result["summary"]), *carried_note(result["runs"]),
                              *skipped, *missing_lines(result.get("missing", []))]) + "\n"


def missing_lines(missing: list[dict]) -> list[str]:
    """One line per variant, task and reason, its seeds listed: a partial MP report misses dozens."""
    seeds: dict[tuple[str, str, str], list] = {}
    for m in missing:
        seeds.setdefault((m.get("why", "not yet run"), m["variant"], m["task"]), []).append(m["seed"])
    return [f"- {why} (report written with --cached-only): *{variant}* {task} "
            f"seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}"
            for (why, variant, task), s in seeds.items()]


def carried_note(runs: list[dict]) -> list[str]:
    """One line naming the runs reused from earlier reports (``--earlier``), if any."""
    sources = Counter(r["carried_from"] for r in runs if "carried_from" in r)
    if not sources:
        return []
    return [f"- {sum(sources.values())} of {len(runs)} runs are taken from earlier reports, their "
            "run folders being gone (each matched on table, records, upstream version and epochs; "
            "its commit is in the JSON): "
            + "; ".join(f"{name} ({count})" for name, count in sorted(sources.items())) + "."]


def verdicts(summary: list[dict]) -> list[str]:
    """Per task and back-end: the best CT variant against the default, its best control (the
    random tables and one-hot, or the untrained encoder for the encoder row: the knowledge part
    of a gain) and the best peer."""
    lines = []
    for task, upstream in dict.fromkeys((r["task"], r["upstream"]) for r in summary):
        rows = [r for r in summary if (r["task"], r["upstream"]) == (task, upstream)
                and r["mean"] is not None]
        ct = min((r for r in rows if r["table"].startswith("ct") and not is_control(r["table"])),
                 key=_mean, default=None)
        if ct is None or ct["vs_default"] is None:
            continue
        peer = min((r for r in rows if is_peer(r["table"])), key=_mean, default=None)
        controls_ct = control_of(ct["table"])
        control = min((r for r in rows if controls_ct(r["table"])), key=_mean, default=None)
        line = (f"- {task}, {upstream}: best CT variant *{ct['variant']}* {ct['mean']:.4f} "
                f"({_pct(ct['vs_default'])} vs default)")
        if control:
            net = (ct["mean"] - control["mean"]) / control["mean"]
            line += (f"; the best control *{control['variant']}* {control['mean']:.4f} "
                     f"({_pct(control['vs_default'])}): CT vs control {_pct(net)}")
        if peer:
            ahead = "ahead of" if ct["mean"] <= peer["mean"] else "behind"
            line += f"; {ahead} the best peer *{peer['variant']}* {peer['mean']:.4f}"
        lines.append(line + ".")
    return lines


def changed_epochs(scale: dict) -> dict[str, int]:
    """The back-ends whose fixed epochs --epochs set away from the scale's own (a scale as a dict)."""
    base = scale.get("base_epochs") or {}
    return {u: n for u, n in scale["epochs"].items() if n != base.get(u, n)}


def _fixed_epochs_label(scale: dict, epochs: dict[str, int]) -> str:
    changed = changed_epochs(scale)
    own = {u: scale["base_epochs"][u] for u in changed if u in epochs}
    return f"fixed epochs {epochs}" + (f" (set by --epochs; the scale's own: {own})" if own else "")


def protocol_label(result: dict, epochs: dict[str, int]) -> str:
    """Fixed epochs, or converged with the epochs the runs actually trained (``epochs``: those
    of the back-ends the report covers)."""
    scale = result["scale"]
    if scale.get("patience") is None:
        return _fixed_epochs_label(scale, epochs)
    trained = [r["stopped_epoch"] for r in result["runs"] if r.get("stopped_epoch") is not None]
    spread = f", trained {min(trained)}-{max(trained)} epochs" if trained else ""
    return (f"converged (early stopping, patience {scale['patience']}, at most "
            f"{max(epochs.values())} epochs{spread}; test MAE of the best-validation model)")


def _seeds(seeds: dict[str, list[int]]) -> str:
    return ", ".join(f"{upstream} {list(s)}" for upstream, s in seeds.items())


def _mean(row: dict) -> float:
    return row["mean"]


def _mean_std(row: dict) -> str:
    if row["mean"] is None:
        return "failed"
    return f"{row['mean']:.4f}" + (f" ± {row['std']:.4f}" if row["std"] is not None else "")


def _diff(row: dict) -> str:
    if row["paired_diff_mean"] is None:
        return "–"
    spread = f" ± {row['paired_diff_std']:.4f}" if row["paired_diff_std"] is not None else ""
    return f"{row['paired_diff_mean']:+.4f}{spread}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}%"


def bar_chart(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(result["data"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = [r for r in result["summary"] if r["task"] == task and r["mean"] is not None]
        y = np.arange(len(rows))
        ax.barh(y, [r["mean"] for r in rows], xerr=[r["std"] or 0 for r in rows], capsize=3)
        ax.set_yticks(y, [r["variant"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("test MAE")
        ax.set_title(task)
    fig.suptitle(f"{result['title']} (scale {result['scale']['name']}, "
                 f"{result.get('protocol', 'fixed epochs')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(result: dict, out: Path) -> dict[str, Path]:
    return write_report_files(result, out, result["experiment"], markdown, bar_chart)


def write_report_files(result: dict, out: Path, name: str, render_markdown: Callable[[dict], str],
                       render_png: Callable[[dict, Path], Path]) -> dict[str, Path]:
    """``OUT/NAME-SCALE[-converged-pN | -epochs-UPSTREAMN...].{json,md,png}`` of a benchmark
    result: other protocols never overwrite the report of the scale's own fixed epochs."""
    out.mkdir(parents=True, exist_ok=True)
    scale = result["scale"]
    stem = f"{name}-{scale['name']}"
    if scale.get("patience") is not None:
        stem += f"-converged-p{scale['patience']}"
    elif changed_epochs(scale):
        stem += "-epochs-" + "-".join(f"{u}{n}" for u, n in sorted(changed_epochs(scale).items()))
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result, indent=2))
    paths["markdown"].write_text(render_markdown(result))
    render_png(result, paths["png"])
    return paths

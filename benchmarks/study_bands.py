"""Bands over seeds: a model's runs (one per seed) combined per evaluation, `fid.png` and the Markdown table.

Per model and evaluation kimg, every banded metric (`BANDS`: FID, FG-ARI, locality) gets its mean over the seeds
that evaluated it (key `fid`, so a single-seed study reads as before), its range (`fid_min`, `fid_max`) and the
per-seed values in the order of the study's seeds (`fid_seeds`, None where a run has no value at that kimg).
"""

from __future__ import annotations

from typing import Any, Optional

from dnnlib.files import atomic_file

BANDS = ("fid", "fg_ari", "locality")  # metrics reported as mean and min-max over seeds
LABELS = {"fid": "FID", "fg_ari": "FG-ARI", "locality": "locality"}
DIGITS = {"fid": 1, "fg_ari": 2, "locality": 2}


def _mean(values: list[Optional[float]]) -> Optional[float]:
    """The mean of the values that are not None (None when there are none)."""
    got = [float(v) for v in values if v is not None]
    return sum(got) / len(got) if got else None


def aggregate(runs_evaluations: list[list[dict]]) -> list[dict[str, Any]]:
    """Combines the runs' evaluations (one list per seed, `study_report.run_record`'s) kimg by kimg.

    Returns:
        One row per kimg any run evaluated: `kimg`, `images_seen`, `fid_num_images`, `num_seeds` (runs evaluated at
        that kimg), `train_seconds` and `eval_seconds` (means), and for every metric of `BANDS` that some run has:
        `<metric>` (mean), `<metric>_min`, `<metric>_max` and `<metric>_seeds` (per seed, None where missing).
    """
    by_run = [{e["kimg"]: e for e in evals} for evals in runs_evaluations]
    out = []
    for kimg in sorted(set().union(*by_run)):
        rows = [b.get(kimg) for b in by_run]
        present = [r for r in rows if r is not None]
        row: dict[str, Any] = {"kimg": kimg, "images_seen": present[0]["images_seen"],
                               "fid_num_images": present[0].get("fid_num_images"), "num_seeds": len(present),
                               "train_seconds": _mean([r.get("train_seconds") for r in present]),
                               "eval_seconds": _mean([r.get("eval_seconds") for r in present])}
        for key in BANDS:
            values = [None if r is None else r.get(key) for r in rows]
            got = [v for v in values if v is not None]
            if got:
                row.update({key: _mean(got), f"{key}_min": min(got), f"{key}_max": max(got), f"{key}_seeds": values})
        out.append(row)
    return out


def model_summary(runs: list[dict]) -> dict[str, Any]:
    """One model's entry of study.json from its runs' records (one per seed, in the study's seed order).

    `evaluations` are the bands (`aggregate`); `wall_seconds` is the mean over runs (the cost of one run, as the
    training seconds); `parameters` are the first finished run's counts; `samples` and `maps` list every run's grids;
    `runs` keeps the per-seed records.
    """
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs],
                           "evaluations": aggregate([r["evaluations"] for r in runs]),
                           "finished": all(r["finished"] for r in runs),
                           "wall_seconds": round(_mean([r["wall_seconds"] for r in runs]) or 0.0, 1)}
    params = [r["parameters"] for r in runs if r.get("parameters")]
    if params:
        out["parameters"] = params[0]
    out["samples"] = [r["samples"] for r in runs if r.get("samples")]
    out["maps"] = [m for r in runs for m in r["maps"]]
    out["runs"] = runs
    return out


def fg_ari_ceiling(summary: dict) -> Optional[float]:
    """The segmenter's own FG-ARI on rendered scenes (the highest FG-ARI a generator can score), when measured."""
    seg = summary.get("segmenter_vs_renderer")
    return float(seg["fg_ari"]) if seg else None


def _band(ax: Any, evaluations: list[dict], key: str, label: str) -> None:
    """The mean line of `key` vs kimg with its min-max band shaded in the line's colour."""
    pts = [e for e in evaluations if key in e]
    if not pts:
        return
    x = [e["kimg"] for e in pts]
    (line,) = ax.plot(x, [e[key] for e in pts], "o-", label=label)
    if any(e[f"{key}_max"] > e[f"{key}_min"] for e in pts):
        ax.fill_between(x, [e[f"{key}_min"] for e in pts], [e[f"{key}_max"] for e in pts], color=line.get_color(),
                        alpha=0.2, linewidth=0)


def plot(summary: dict, out_png: str) -> None:
    """`fid.png`: FID vs kimg, FID vs training time, and FG-ARI and locality vs kimg when any model has them; the
    kimg panels draw each model's mean with its min-max band over seeds, the time panel the mean."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = summary["models"]
    extra = [k for k in ("fg_ari", "locality") if any(k in e for m in models.values() for e in m["evaluations"])]
    fig, axes = plt.subplots(1, 2 + len(extra), figsize=(4.5 * (2 + len(extra)), 3.6), squeeze=False)
    axes = list(axes[0])
    for name, rec in models.items():
        ev = rec["evaluations"]
        _band(axes[0], ev, "fid", name)
        timed = [e for e in ev if e["train_seconds"] is not None]
        axes[1].plot([e["train_seconds"] / 60 for e in timed], [e["fid"] for e in timed], "o-", label=name)
        for ax, key in zip(axes[2:], extra):
            _band(ax, ev, key, name)
    seeds = summary["options"]["seeds"]
    axes[0].set(xlabel="kimg (thousands of real images shown)", ylabel=f"FID ({summary['options']['fid_images']} "
                "images)", title="FID vs kimg")
    axes[1].set(xlabel="training minutes (evaluations excluded)", ylabel="FID", title="FID vs training time")
    for ax, key in zip(axes[2:], extra):
        _decorate(ax, key, summary)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if len(seeds) > 1:
        fig.suptitle(f"lines: mean over the seeds {', '.join(map(str, seeds))}; shaded: min-max over them",
                     fontsize=10)
    fig.tight_layout()
    with atomic_file(out_png) as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)


def _decorate(ax: Any, key: str, summary: dict) -> None:
    """Labels of the FG-ARI or locality panel, with its reference lines (chance; the segmenter's ceiling)."""
    if key == "fg_ari":
        ax.set(xlabel="kimg", ylabel="FG-ARI", title="attention vs objects (FG-ARI)")
        ax.axhline(0.0, color="grey", lw=0.5)
        ceiling = fg_ari_ceiling(summary)
        if ceiling is not None:
            ax.axhline(ceiling, color="grey", ls="--", lw=1, label=f"segmenter ceiling {ceiling:.2f}")
    else:
        ax.set(xlabel="kimg", ylabel="locality (× chance)", title="locality: change inside own region")
        ax.axhline(1.0, color="grey", ls="--", lw=1, label="chance")


def _cell(e: Optional[dict], key: str) -> str:
    """`mean` with one seed, `mean [min–max]` with several; `–` without a value."""
    if e is None or key not in e:
        return "–"
    d = DIGITS[key]
    if sum(v is not None for v in e[f"{key}_seeds"]) > 1:
        return f"{e[key]:.{d}f} [{e[f'{key}_min']:.{d}f}–{e[f'{key}_max']:.{d}f}]"
    return f"{e[key]:.{d}f}"


def table_caption(summary: dict) -> str:
    """What the table's rows and cells mean, with the segmenter's FG-ARI ceiling when it was measured."""
    seeds = summary["options"]["seeds"]
    text = ("Rows: FID of every model; FG-ARI (attention vs object regions, 0 = chance) and locality (the change "
            "from resampling a latent inside its own region, as a multiple of chance, 1 = chance) of attention models.")
    if len(seeds) > 1:
        text += (f" Cells: mean [min–max] over the {len(seeds)} seeds {', '.join(map(str, seeds))}; training and "
                 "wall minutes: mean per run.")
    ceiling = fg_ari_ceiling(summary)
    if ceiling is not None:
        text += f" FG-ARI ceiling of the segmenter at this resolution: {ceiling:.2f}."
    return text


def summary_table(summary: dict) -> str:
    """A Markdown table, one row per model and metric (FID, FG-ARI, locality) with a column per evaluation kimg, plus
    training and wall minutes; then a blank line and `table_caption`."""
    models = summary["models"]
    kimgs = sorted({e["kimg"] for m in models.values() for e in m["evaluations"]})
    head = "| model | metric | " + " | ".join(f"{k:g} kimg" for k in kimgs) + " | training min | wall min |"
    lines = [head, "|" + "---|" * (len(kimgs) + 4)]
    for name, rec in models.items():
        by = {e["kimg"]: e for e in rec["evaluations"]}
        train = rec["evaluations"][-1]["train_seconds"] if rec["evaluations"] else None
        times = f" | {'–' if train is None else f'{train / 60:.1f}'} | {rec['wall_seconds'] / 60:.1f} |"
        keys = [k for k in BANDS if k == "fid" or any(k in e for e in rec["evaluations"])]
        for i, key in enumerate(keys):
            cells = " | ".join(_cell(by.get(k), key) for k in kimgs)
            lines.append(f"| {name} | {LABELS[key]} | {cells}" + (times if i == 0 else " | | |"))
    return "\n".join(lines) + "\n\n" + table_caption(summary)

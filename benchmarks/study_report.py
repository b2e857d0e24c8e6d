"""The study's outputs: `study.json`, `fid.png`, sample and attention-map grids, and `study.html`.

Everything is read back from the training runs (`metric-*.jsonl`, `stats.jsonl`, `network-final.pkl`,
`visuals/maps/`), so the report always agrees with what the runs recorded.
"""

from __future__ import annotations

import glob
import html
import json
import os
import shutil
from typing import Any, Optional

import numpy as np

from dnnlib.util import atomic_file, write_atomic, write_json_atomic

SAMPLES = 32  # final samples per model (4 rows of 8)


def _jsonl(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def _by_kimg(records: list[dict]) -> dict[float, dict]:
    """The last record of each kimg (a resumed run may have evaluated a snapshot twice)."""
    return {round(float(r["kimg"]), 3): r for r in records}


def train_seconds_at(run: str) -> dict[float, float]:
    """Cumulative training seconds (ticks only, evaluations excluded) at the end of each tick, by kimg."""
    ticks = {round(float(r["Progress/kimg"]), 3): float(r["Timing/sec_per_tick"])
             for r in _jsonl(os.path.join(run, "stats.jsonl"))}
    total, out = 0.0, {0.0: 0.0}
    for kimg in sorted(ticks):
        total += ticks[kimg]
        out[kimg] = total
    return out


def model_record(run: str, batch_size: int, ari_metric: str) -> dict[str, Any]:
    """One model's evaluations and costs from its run folder (`ari_metric`: the FG-ARI metric's name)."""
    fid = _by_kimg(_jsonl(os.path.join(run, "metric-fid.jsonl")))
    ari = _by_kimg(_jsonl(os.path.join(run, f"metric-{ari_metric}.jsonl")))
    seconds = train_seconds_at(run)
    evals = []
    for kimg in sorted(fid):
        row = {"kimg": kimg, "images_seen": int(round(kimg * 1000)), "fid": fid[kimg]["value"],
               "fid_num_images": fid[kimg]["num_images"], "train_seconds": seconds.get(kimg),
               "eval_seconds": fid[kimg].get("seconds")}
        if kimg in ari:
            row["fg_ari"] = ari[kimg]["value"]
            row["fg_ari_num_scored"] = ari[kimg]["results"].get("num_scored")
        evals.append(row)
    return {"run_dir": run, "batch_size": batch_size, "evaluations": evals,
            "finished": os.path.isfile(os.path.join(run, "_finished.txt"))}


def final_samples(run: str, out_png: str, seed: int) -> dict[str, int]:
    """Samples `SAMPLES` images from the run's final Gs (ψ = 1, stored noise) and returns parameter counts."""
    from training import snapshot
    from training.vis.imageio import make_grid, save_png, to_uint8
    nets = snapshot.load_networks(os.path.join(run, "network-final.pkl"))
    z = np.random.RandomState(seed).randn(SAMPLES, *nets.Gs.latent_shape).astype(np.float32)
    images = nets.Gs(z, None, truncation_psi=1.0, noise_mode="const")
    images = images[0] if isinstance(images, (tuple, list)) else images
    save_png(out_png, make_grid(to_uint8(np.asarray(images)), cols=8, pad=1))
    count = lambda net: int(sum(np.prod(v.shape) for v in net.trainable_variables))  # noqa: E731
    return {"G": count(nets.G), "D": count(nets.D)}


def real_samples(dataset_dir: str, out_png: str, seed: int) -> int:
    """Writes a grid of `SAMPLES` real training images; returns the dataset's image count."""
    from training.dataset import open_dataset
    from training.vis.imageio import make_grid, save_png
    dataset = open_dataset(dataset_dir)
    batch = next(iter(dataset.tf_dataset(SAMPLES, shuffle=True, repeat=True, seed=seed)))
    images = batch[0] if isinstance(batch, tuple) else batch
    save_png(out_png, make_grid(images.numpy(), cols=8, pad=1))
    return int(dataset.num_images)


def copy_maps(run: str, model: str, out_dir: str) -> list[str]:
    """Copies the run's attention-map grids (one per evaluation) as `maps/<model>-<kimg label>.png`."""
    names = []
    for path in sorted(glob.glob(os.path.join(run, "visuals", "maps", "*.png"))):
        name = f"{model}-{os.path.basename(path)}"
        shutil.copyfile(path, os.path.join(out_dir, name))
        names.append(f"maps/{name}")
    return names


def plot(summary: dict, out_png: str) -> None:
    """FID vs kimg, FID vs training time (and FG-ARI vs kimg when any model has it), one line per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = summary["models"]
    has_ari = any("fg_ari" in e for m in models.values() for e in m["evaluations"])
    fig, axes = plt.subplots(1, 3 if has_ari else 2, figsize=(13 if has_ari else 9, 3.6))
    for name, rec in models.items():
        ev = rec["evaluations"]
        axes[0].plot([e["kimg"] for e in ev], [e["fid"] for e in ev], "o-", label=name)
        timed = [e for e in ev if e["train_seconds"] is not None]
        axes[1].plot([e["train_seconds"] / 60 for e in timed], [e["fid"] for e in timed], "o-", label=name)
        if has_ari and any("fg_ari" in e for e in ev):
            axes[2].plot([e["kimg"] for e in ev if "fg_ari" in e], [e["fg_ari"] for e in ev if "fg_ari" in e],
                         "o-", label=name)
    fid_n = summary["options"]["fid_images"]
    axes[0].set(xlabel="kimg (thousands of real images shown)", ylabel=f"FID ({fid_n} images)", title="FID vs kimg")
    axes[1].set(xlabel="training minutes (evaluations excluded)", ylabel="FID", title="FID vs training time")
    if has_ari:
        axes[2].set(xlabel="kimg", ylabel="FG-ARI", title="attention vs objects (FG-ARI)")
        axes[2].axhline(0.0, color="grey", lw=0.5)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_file(out_png) as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)


def write_report(result_dir: str, options: dict, wall_seconds: dict, attention_models: tuple,
                 ari_metric: str) -> dict:
    """Writes study.json, fid.png, samples/, maps/ and study.html; returns the study.json content."""
    for sub in ("samples", "maps"):
        os.makedirs(os.path.join(result_dir, sub), exist_ok=True)
    summary: dict[str, Any] = {"options": options, "models": {}}
    for model in options["models"]:
        run = os.path.join(result_dir, "runs", f"{model}-000")
        rec = model_record(run, options["batch_size"], ari_metric)
        rec["wall_seconds"] = round(float(wall_seconds.get(model, 0.0)), 1)
        if rec["finished"]:
            rec["parameters"] = final_samples(run, os.path.join(result_dir, "samples", f"{model}.png"),
                                              options["seed"])
            rec["samples"] = f"samples/{model}.png"
        rec["maps"] = copy_maps(run, model, os.path.join(result_dir, "maps")) if model in attention_models else []
        summary["models"][model] = rec
    summary["dataset_images"] = real_samples(os.path.join(options["data_dir"], options["dataset"]),
                                             os.path.join(result_dir, "samples", "reals.png"), options["seed"])
    if any("fg_ari" in e for m in summary["models"].values() for e in m["evaluations"]):
        from metrics.fg_ari import segmenter_ari
        if options["dataset"] == "shapes":
            summary["segmenter_vs_renderer"] = segmenter_ari(num_images=1000, resolution=options["resolution"])
    plot(summary, os.path.join(result_dir, "fid.png"))
    write_json_atomic(os.path.join(result_dir, "study.json"), summary)
    write_atomic(os.path.join(result_dir, "study.html"), render_html(summary))
    return summary


def summary_table(summary: dict) -> str:
    """A Markdown table: FID (and FG-ARI) of every model at every evaluation, plus time."""
    models = summary["models"]
    kimgs = sorted({e["kimg"] for m in models.values() for e in m["evaluations"]})
    head = "| model | " + " | ".join(f"{k:g} kimg" for k in kimgs) + " | training min | wall min |"
    lines = [head, "|" + "---|" * (len(kimgs) + 3)]
    for name, rec in models.items():
        by = {e["kimg"]: e for e in rec["evaluations"]}
        cells = []
        for k in kimgs:
            e = by.get(k)
            cells.append("–" if e is None else f"{e['fid']:.1f}" + (f" / {e['fg_ari']:.2f}" if "fg_ari" in e else ""))
        train = rec["evaluations"][-1]["train_seconds"] if rec["evaluations"] else None
        train_cell = "–" if train is None else f"{train / 60:.1f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {train_cell} | {rec['wall_seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n\nCells: FID (FID / FG-ARI for attention models)."


def _img(src: str, alt: str, width: Optional[int] = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}"{w} style="image-rendering:pixelated">'


def render_html(summary: dict) -> str:
    """A self-contained page (relative links) showing the table, the plot, samples and attention maps."""
    o = summary["options"]
    table_md = summary_table(summary).split("\n\n")[0].splitlines()
    rows = [r.strip("|").split("|") for r in table_md if not r.startswith("|---")]
    table = "<table border=1 cellpadding=4>" + "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>"
                         for c in row) + "</tr>" for i, row in enumerate(rows)) + "</table>"
    parts = [f"<h1>Study: {html.escape(', '.join(o['models']))} on {html.escape(o['dataset'])} "
             f"{o['resolution']}×{o['resolution']}</h1>",
             f"<p>{o['kimg']:g} kimg per model, batch {o['batch_size']}, channels ≤ {o['channel_max']}, "
             f"R1 γ {o['gamma']:g}, seed {o['seed']}, FID on {o['fid_images']} images every {o['eval_every']:g} "
             "kimg. Cells: FID, or FID / FG-ARI.</p>", table, _img("fid.png", "FID curves"),
             "<h2>Final samples (ψ = 1)</h2><p>reals:<br>" + _img("samples/reals.png", "reals", 512) + "</p>"]
    for name, rec in summary["models"].items():
        if rec.get("samples"):
            parts.append(f"<p>{html.escape(name)}:<br>{_img(rec['samples'], name, 512)}</p>")
    for name, rec in summary["models"].items():
        if rec["maps"]:
            parts.append(f"<h2>{html.escape(name)}: attention maps (image | map | blend, one colour per latent)</h2>")
            parts += [f"<p>{html.escape(os.path.basename(m))}<br>{_img(m, m, 576)}</p>" for m in rec["maps"]]
    seg = summary.get("segmenter_vs_renderer")
    if seg:
        parts.append(f"<p>Segmenter vs the renderer's object ids on {seg['num_images']} rendered images: "
                     f"FG-ARI {seg['fg_ari']:.3f}, ARI {seg['ari']:.3f}, object recall {seg['object_recall']:.3f}, "
                     f"floor false positives {seg['floor_false_positive']:.3f}.</p>")
    return "<!doctype html><meta charset=utf-8><title>study</title><body>" + "\n".join(parts) + "</body>"

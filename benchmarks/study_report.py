"""The study's outputs: `study.json`, sample and attention-map grids, and `study.html` (`fid.png`, the bands over
seeds and the Markdown table are `benchmarks.study_bands`).

Everything is read back from the training runs (`metric-*.jsonl`, `stats.jsonl`, `network-final.pkl`,
`visuals/maps/`), so the report always agrees with what the runs recorded. A run is one model trained with one
seed; `run_name` names it, and its samples and map grids are named after it (`samples/<run>.png`,
`maps/<run>-<kimg>.png`).
"""

from __future__ import annotations

import glob
import html
import json
import os
import shutil
from typing import Any, Optional

import numpy as np

from benchmarks import study_bands
from benchmarks.study_bands import summary_table  # noqa: F401 (the table printed by study.py)
from dnnlib.files import write_atomic, write_json_atomic

SAMPLES = 32  # final samples per run (4 rows of 8)


def run_name(model: str, seed: int, seeds: list[int]) -> str:
    """A run's name (its `--expname`): the model's name when the study has one seed, else `<model>-s<seed>`."""
    return model if len(seeds) == 1 else f"{model}-s{seed}"


def run_folder(result_dir: str, name: str) -> str:
    """The training folder of the run called `name` (`runs/<name>-000`)."""
    return os.path.join(result_dir, "runs", f"{name}-000")


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


def run_record(run: str, batch_size: int, ari_metric: str, locality_metric: str) -> dict[str, Any]:
    """One run's evaluations and costs from its folder (`ari_metric`, `locality_metric`: the metrics' names)."""
    fid = _by_kimg(_jsonl(os.path.join(run, "metric-fid.jsonl")))
    ari = _by_kimg(_jsonl(os.path.join(run, f"metric-{ari_metric}.jsonl")))
    loc = _by_kimg(_jsonl(os.path.join(run, f"metric-{locality_metric}.jsonl")))
    seconds = train_seconds_at(run)
    evals = []
    for kimg in sorted(fid):
        row = {"kimg": kimg, "images_seen": int(round(kimg * 1000)), "fid": fid[kimg]["value"],
               "fid_num_images": fid[kimg]["num_images"], "train_seconds": seconds.get(kimg),
               "eval_seconds": fid[kimg].get("seconds")}
        if kimg in ari:
            row["fg_ari"] = ari[kimg]["value"]
            row["fg_ari_num_scored"] = ari[kimg]["results"].get("num_scored")
        if kimg in loc:
            results = loc[kimg].get("results", {})
            row["locality"] = loc[kimg]["value"]
            row.update({f"locality_{key}": results.get(key) for key in ("share", "change")})
            row.update({key: results.get(key) for key in ("entropy_last", "latents_used_last")})
        evals.append(row)
    return {"run_dir": run, "batch_size": batch_size, "evaluations": evals,
            "finished": os.path.isfile(os.path.join(run, "_finished.txt"))}


def final_samples(run: str, out_png: str, seed: int) -> dict[str, int]:
    """Samples `SAMPLES` images from the run's final Gs (ψ = 1, stored noise) and returns parameter counts."""
    from training.formats import networks as snapshot
    from dnnlib.tflib.ops.quantize import quantize_numpy
    from training.vis.imageio import make_grid, save_png
    nets = snapshot.load_networks(os.path.join(run, "network-final.pkl"))
    z = np.random.RandomState(seed).randn(SAMPLES, *nets.Gs.latent_shape).astype(np.float32)
    images = nets.Gs(z, None, truncation_psi=1.0, noise_mode="const")
    images = images[0] if isinstance(images, (tuple, list)) else images
    save_png(out_png, make_grid(quantize_numpy(np.asarray(images)), cols=8, pad=1))
    count = lambda net: int(sum(np.prod(v.shape) for v in net.trainable_variables))  # noqa: E731
    return {"G": count(nets.G), "D": count(nets.D)}


def real_samples(dataset_dir: str, out_png: str, seed: int) -> int:
    """Writes a grid of `SAMPLES` real training images; returns the dataset's image count."""
    from training.data.loader import open_dataset
    from training.vis.imageio import make_grid, save_png
    dataset = open_dataset(dataset_dir)
    batch = next(iter(dataset.tf_dataset(SAMPLES, shuffle=True, repeat=True, seed=seed)))
    images = batch[0] if isinstance(batch, tuple) else batch
    save_png(out_png, make_grid(images.numpy(), cols=8, pad=1))
    return int(dataset.num_images)


def copy_maps(run: str, name: str, out_dir: str) -> list[str]:
    """Copies the run's attention-map grids (one per evaluation) as `maps/<run name>-<kimg label>.png`."""
    copied = []
    for path in sorted(glob.glob(os.path.join(run, "visuals", "maps", "*.png"))):
        target = f"{name}-{os.path.basename(path)}"
        shutil.copyfile(path, os.path.join(out_dir, target))
        copied.append(f"maps/{target}")
    return copied


def _run_outputs(result_dir: str, options: dict, model: str, seed: int, wall_seconds: dict, attention: bool,
                 metrics: tuple[str, str]) -> dict[str, Any]:
    """One run's record (`run_record`) with its name, seed, wall seconds, final samples and copied map grids."""
    name = run_name(model, seed, options["seeds"])
    run = run_folder(result_dir, name)
    rec = {"name": name, "seed": seed, **run_record(run, options["batch_size"], *metrics)}
    rec["wall_seconds"] = round(float(wall_seconds.get(name, 0.0)), 1)
    if rec["finished"]:
        rec["parameters"] = final_samples(run, os.path.join(result_dir, "samples", f"{name}.png"), seed)
        rec["samples"] = f"samples/{name}.png"
    rec["maps"] = copy_maps(run, name, os.path.join(result_dir, "maps")) if attention else []
    return rec


def write_report(result_dir: str, options: dict, wall_seconds: dict, attention_models: tuple,
                 ari_metric: str, locality_metric: str = "locality200") -> dict:
    """Writes study.json, fid.png, samples/, maps/ and study.html; returns the study.json content.

    Args:
        result_dir: The study's folder (runs in `runs/`).
        options: The study's options (`study.StudyOptions` as a dict, with `models` and `seeds`).
        wall_seconds: Wall seconds by run name.
        attention_models: The models with attention maps (FG-ARI, locality and map grids).
        ari_metric, locality_metric: The names of the FG-ARI and locality metrics the runs evaluated.
    """
    for sub in ("samples", "maps"):
        os.makedirs(os.path.join(result_dir, sub), exist_ok=True)
    summary: dict[str, Any] = {"options": options, "models": {}}
    for model in options["models"]:
        runs = [_run_outputs(result_dir, options, model, seed, wall_seconds, model in attention_models,
                             (ari_metric, locality_metric)) for seed in options["seeds"]]
        summary["models"][model] = study_bands.model_summary(runs)
    summary["dataset_images"] = real_samples(os.path.join(options["data_dir"], options["dataset"]),
                                             os.path.join(result_dir, "samples", "reals.png"), options["seeds"][0])
    if any("fg_ari" in e for m in summary["models"].values() for e in m["evaluations"]):
        from metrics.fg_ari import segmenter_ari
        if options["dataset"] == "shapes":
            summary["segmenter_vs_renderer"] = segmenter_ari(num_images=1000, resolution=options["resolution"])
    study_bands.plot(summary, os.path.join(result_dir, "fid.png"))
    write_json_atomic(os.path.join(result_dir, "study.json"), summary)
    write_atomic(os.path.join(result_dir, "study.html"), render_html(summary))
    return summary


def _img(src: str, alt: str, width: Optional[int] = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}"{w} style="image-rendering:pixelated">'


def _html_table(summary: dict) -> str:
    """The Markdown table of `summary_table` as an html table."""
    table_md = summary_table(summary).split("\n\n")[0].splitlines()
    rows = [r.strip("|").split("|") for r in table_md if not r.startswith("|---")]
    return "<table border=1 cellpadding=4>" + "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>"
                         for c in row) + "</tr>" for i, row in enumerate(rows)) + "</table>"


def _run_label(rec: dict, seeds: list[int]) -> str:
    return rec["name"] if len(seeds) == 1 else f"{rec['name']} (seed {rec['seed']})"


def render_html(summary: dict) -> str:
    """A self-contained page (relative links) showing the table, the plot, samples and attention maps of every run."""
    o = summary["options"]
    seeds = o["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    caption = summary_table(summary).split("\n\n", 1)[1]
    parts = [f"<h1>Study: {html.escape(', '.join(o['models']))} on {html.escape(o['dataset'])} "
             f"{o['resolution']}×{o['resolution']}</h1>",
             f"<p>{o['kimg']:g} kimg per run, batch {o['batch_size']}, channels ≤ {o['channel_max']}, "
             f"R1 γ {o['gamma']:g}, {seed_text}, FID on {o['fid_images']} images every {o['eval_every']:g} "
             "kimg.</p>", _html_table(summary), f"<p>{html.escape(caption)}</p>", _img("fid.png", "FID curves"),
             "<h2>Final samples (ψ = 1)</h2><p>reals:<br>" + _img("samples/reals.png", "reals", 512) + "</p>"]
    for rec in (r for m in summary["models"].values() for r in m["runs"]):
        if rec.get("samples"):
            label = _run_label(rec, seeds)
            parts.append(f"<p>{html.escape(label)}:<br>{_img(rec['samples'], label, 512)}</p>")
    for rec in (r for m in summary["models"].values() for r in m["runs"]):
        if rec["maps"]:
            parts.append(f"<h2>{html.escape(_run_label(rec, seeds))}: attention maps (image | hard map | blend | "
                         "soft map, one colour per latent)</h2>")
            parts += [f"<p>{html.escape(os.path.basename(m))}<br>{_img(m, m, 576)}</p>" for m in rec["maps"]]
    seg = summary.get("segmenter_vs_renderer")
    if seg:
        parts.append(f"<p>Segmenter vs the renderer's object ids on {seg['num_images']} rendered images: "
                     f"FG-ARI {seg['fg_ari']:.3f}, ARI {seg['ari']:.3f}, object recall {seg['object_recall']:.3f}, "
                     f"floor false positives {seg['floor_false_positive']:.3f}.</p>")
    return "<!doctype html><meta charset=utf-8><title>study</title><body>" + "\n".join(parts) + "</body>"

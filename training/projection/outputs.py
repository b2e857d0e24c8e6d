"""What a projection writes, per target and for the whole run (every file atomically).

Per target, in `<output-dir>/<name>/`:
- `target.png` (the content rows projected), `start.png` (the image at the starting latents), `projection.png`;
- `ws.npy`: the ws `[1, K, S, d]` (`generate.py --latents <name>/ws.npy --truncation-psi 1` makes
  `projection.png` again with the model's stored noise); in space z also `z.npy` `[1, K, d]`; with optimized noise
  `noise.npz` (one array per layer, `[lead, r, r, 1]`);
- `progress.gif`: target | current image, every few steps; `loss.png`: the loss terms per step;
- `softmap.png`, `map.png`, `softblend.png`, `blend.png`: the last attention layer (head 0) of the projection, drawn
  as `--vis-maps` draws them (colours in `latent-colours.png`): which latent owns which region of the image;
- `latent-swap.png` with `--vis-latent-swap` (see `training.vis.latent_edit`);
- `record.json`: source, PSNR and perceptual distance at the start and the end, seconds, per-step losses.
For the run: `projected_ws.npy` `[N, K, S, d]` (and `projected_z.npy`), `projection.json` (settings, per-target
results, means) and `index.html`.
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional

import numpy as np

from dnnlib.files import write_atomic, write_json_atomic
from training.vis import imageio, palette
from training.vis.html_index import Section, render_index

MAP_FILES = (("softmap", "Attention maps (soft)"), ("map", "Attention maps (hard)"),
             ("softblend", "Soft maps over the projection"), ("blend", "Hard maps over the projection"))


def loss_curve_png(history: dict[str, np.ndarray], weights: dict[str, float], title: str) -> bytes:
    """A PNG of the weighted loss terms of one image per step (log scale). `history[k]`: `[steps]`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, len(history["loss"]) + 1)
    for key, label in (("loss", "total"), ("perceptual", "perceptual"), ("mse", "pixel MSE"),
                       ("noise_reg", "noise reg.")):
        values = np.asarray(history[key], np.float64) * weights.get(key, 1.0)
        if np.any(values > 0):
            ax.plot(steps, np.maximum(values, 1e-12), label=f"{label} x{weights[key]:g}" if key in weights else label,
                    linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_maps(folder: str, image: np.ndarray, maps: np.ndarray, alpha: float) -> None:
    """The soft/hard maps and blends of one image `[h, w, 3]` from its maps `[k, heads, h, w]` (head 0)."""
    colours = palette.hls_palette(maps.shape[0])
    probs = maps[None, :, 0]
    soft, hard = palette.soft_maps(probs, colours)[0], palette.hard_maps(probs, colours)[0]
    for name, rgb in (("softmap", soft), ("map", hard), ("softblend", palette.blend(soft[None], image[None], alpha)[0]),
                      ("blend", palette.blend(hard[None], image[None], alpha)[0])):
        imageio.save_png(os.path.join(folder, f"{name}.png"), rgb)


def write_target(folder: str, target: np.ndarray, result: Any, j: int, record: dict[str, Any],
                 weights: dict[str, float], alpha: float) -> None:
    """Writes the files of image `j` of a `Projection` batch `result` into `folder` (see the module docstring)."""
    imageio.save_png(os.path.join(folder, "target.png"), target)
    imageio.save_png(os.path.join(folder, "start.png"), result.start_images[j])
    imageio.save_png(os.path.join(folder, "projection.png"), result.images[j])
    imageio.save_npy(os.path.join(folder, "ws.npy"), result.ws[j:j + 1])
    if result.z is not None:
        imageio.save_npy(os.path.join(folder, "z.npy"), result.z[j:j + 1])
    if result.noise is not None:
        lead = result.noise[0].shape[0] // len(result.images)
        buf = io.BytesIO()
        np.savez(buf, **{f"noise{i}": n[j * lead:(j + 1) * lead] for i, n in enumerate(result.noise)})
        write_atomic(os.path.join(folder, "noise.npz"), buf.getvalue())
    frames = [np.concatenate([target, f[j]], axis=1) for f in result.frames]
    imageio.save_gif(os.path.join(folder, "progress.gif"), frames, duration_ms=100)
    history = {k: v[:, j] for k, v in result.history.items()}
    write_atomic(os.path.join(folder, "loss.png"), loss_curve_png(history, weights, record["name"]))
    if result.maps is not None:
        write_maps(folder, result.images[j], result.maps[j], alpha)
    record = dict(record, history={k: [round(float(x), 6) for x in v] for k, v in history.items()})
    write_json_atomic(os.path.join(folder, "record.json"), record)


def target_record(name: str, source: str, result: Any, j: int, seconds_per_image: float) -> dict[str, Any]:
    """The summary of image `j` of a `Projection` batch."""
    return {"name": name, "source": source, "seconds": round(seconds_per_image, 3),
            "start": {k: round(float(v[j]), 6) for k, v in result.start.items()},
            "end": {k: round(float(v[j]), 6) for k, v in result.end.items()}}


def write_index(output_dir: str, names: list[str], title: str, perceptual: str) -> str:
    """`index.html` of a projection run (the page layout of `training.vis.html_index`); returns its path."""
    def items(file: str, caption: str = "{name}") -> list[tuple[str, str]]:
        return [(f"{n}/{file}", caption.format(name=n)) for n in names if os.path.isfile(
            os.path.join(output_dir, n, file))]

    pairs = [item for n in names for item in ((f"{n}/target.png", f"{n}: target"),
                                              (f"{n}/projection.png", f"{n}: projection"))]
    sections = [Section("projections", "Targets and projections",
                        f"Each target (content rows) and its reconstruction; perceptual distance: {perceptual}.",
                        pairs),
                Section("progress", "Optimization", "Target | current image every few steps.", items("progress.gif")),
                Section("loss", "Loss curves", "Weighted loss terms per step (with the latent noise of the schedule).",
                        items("loss.png"))]
    colours = [("latent-colours.png", "colour of each latent, 0 first")] if os.path.isfile(
        os.path.join(output_dir, "latent-colours.png")) else []
    for file, heading in MAP_FILES:
        sections.append(Section(file, heading, "Last attention layer, head 0, of the projection: which latent owns "
                                "which region of the target.", (colours if file in ("softmap", "map") else [])
                                + items(f"{file}.png")))
    sections.append(Section("latent-swap", "Latent edits", "Rows: local latent i. Columns: the projection | latent i "
                            "resampled | changed pixels | latent i from the next target | changed pixels.",
                            items("latent-swap.png")))
    sections.append(Section("latents", "Latents", "ws [1, K, S, d] per target (generate.py --latents).",
                            items("ws.npy") + [("projected_ws.npy", "all targets")], links_only=True))
    path = os.path.join(output_dir, "index.html")
    imageio.save_text(path, render_index([s for s in sections if s.items], title))
    return path


def write_colours(output_dir: str, k: int) -> None:
    """`latent-colours.png`: the colour of each latent, 16 px swatches."""
    colours = (palette.hls_palette(k) * 255).round().astype(np.uint8)
    imageio.save_png(os.path.join(output_dir, "latent-colours.png"),
                     np.repeat(np.repeat(colours[None], 16, 0), 16, 1))


def write_summary(output_dir: str, settings: dict[str, Any], records: list[dict[str, Any]],
                  ws: np.ndarray, z: Optional[np.ndarray]) -> None:
    """`projection.json` (settings, per-target results, means) and the stacked latents of the run."""
    imageio.save_npy(os.path.join(output_dir, "projected_ws.npy"), ws)
    if z is not None:
        imageio.save_npy(os.path.join(output_dir, "projected_z.npy"), z)
    means = {f"{when}_{k}": round(float(np.mean([r[when][k] for r in records])), 6)
             for when in ("start", "end") for k in records[0]["end"]} if records else {}
    means["seconds_per_image"] = round(float(np.mean([r["seconds"] for r in records])), 3) if records else 0.0
    write_json_atomic(os.path.join(output_dir, "projection.json"),
                      {"settings": settings, "mean": means, "targets": records})

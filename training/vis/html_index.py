"""`index.html`: one self-contained page showing every visualization in an output folder, grouped by kind.

The page is built from the files found on disk (so repeated runs into the same folder, e.g. one per training
snapshot, all appear). Links are relative, styles are inline and nothing external is loaded. A small inline script
checks after loading that every picture decoded and marks the page (`<body data-status="ok">` or a visible warning
listing the broken files), which is also what the headless-browser test reads.
"""

from __future__ import annotations

import glob
import html
import os
import re
import urllib.parse
from dataclasses import dataclass, field

from training.vis.imageio import save_text


@dataclass
class Section:
    """One group of the page: a title, an explanation and a list of `(relative path, caption)` items."""

    key: str
    title: str
    caption: str
    items: list[tuple[str, str]] = field(default_factory=list)
    links_only: bool = False


# (key, folder or file glob relative to the output dir, title, explanation)
_KINDS = [
    ("samples", "sample_*.png", "Samples", "Images written by generate.py, cropped to the content ratio."),
    ("images", "images/*.png", "Images", "Generated samples, cropped to the content ratio."),
    ("softmaps", "softmaps/*.png", "Attention maps (soft)",
     "Last attention layer, head 0: each pixel mixes the latents' colours by their attention probability."),
    ("maps", "maps/*.png", "Attention maps (hard)",
     "Last attention layer, head 0: each pixel gets the colour of the latent it attends to most."),
    ("softblends", "softblends/*.png", "Soft maps over the image", "Soft attention maps blended over the samples."),
    ("blends", "blends/*.png", "Hard maps over the image", "Hard attention maps blended over the samples."),
    ("layer_maps", "layer_maps/**/*.png", "Attention maps per layer and head",
     "Hard maps of every attention layer l (coarse to fine) and head h."),
    ("interpolations-z", "interpolations-z/**/*", "Interpolations in z",
     "Spherical interpolation of every latent component from the sample to a random z (GIF, then its frames)."),
    ("interpolations-w", "interpolations-w/**/*", "Interpolations in w",
     "Linear interpolation of the ws (all components and slots) from the sample to a random one."),
    ("noise-variance", "noise-variance*.png", "Noise variance",
     "Per-pixel standard deviation (x4) over samples that differ only in their random noise."),
    ("layer-mixing", "layer-mixing*.png", "Style mixing by layer",
     "Top row: column sources; left: row sources. Each cell takes the first n broadcast slots (coarse layers) "
     "from its row source and the rest from its column source; each row source has one row per n."),
    ("component-mixing", "component-mixing*.png", "Style mixing by component",
     "Each cell takes the first n local latent components from its row source, the other components and the "
     "global latent from its column source."),
    ("latent-swap", "latent-swap/*.png", "Latent edits",
     "Rows: local latent i. Columns: the sample | latent i resampled | changed pixels | latent i from the next "
     "sample | changed pixels."),
    ("latents-z", "latents-z/*.npy", "Latents z", "The z `[K, d]` of each sample (NumPy .npy)."),
    ("latents-w", "latents-w/*.npy", "Latents w", "The w at the first slot `[K, d]` of each sample (NumPy .npy)."),
]

_CSS = """
body { font-family: sans-serif; margin: 1em 2em; background: #fafafa; color: #222; }
h2 { border-bottom: 1px solid #ccc; margin-top: 1.5em; }
p.caption { color: #555; max-width: 60em; }
div.items { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; text-align: center; }
figure img { display: block; min-width: 96px; max-width: 512px; image-rendering: pixelated; }
figcaption { font-size: 11px; color: #666; }
ul.links { columns: 4; font-size: 12px; }
#status { padding: 0.5em; background: #fdd; display: none; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var bad = [];
  var imgs = document.getElementsByTagName("img");
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) { bad.push(imgs[i].getAttribute("src")); }
  }
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-status", bad.length ? "broken" : "ok");
  if (bad.length) {
    var s = document.getElementById("status");
    s.style.display = "block";
    s.textContent = bad.length + " file(s) could not be shown: " + bad.join(", ");
  }
});
"""


def _caption(rel: str) -> str:
    """Human caption from a relative file name, e.g. `layer_maps/000003/l2_h0.png` -> `sample 3, layer 2, head 0`."""
    parts = rel.split("/")
    parts = parts[1:] if len(parts) > 1 else parts
    words = []
    for p in parts:
        stem = os.path.splitext(p)[0]
        m = re.fullmatch(r"l(\d+)_h(\d+)", stem)
        steps = re.fullmatch(r"(\d+)_(\d+)", stem)
        if m:
            words.append(f"layer {int(m.group(1))}, head {int(m.group(2))}")
        elif steps:
            words.append(f"step {int(steps.group(1))}, sample {int(steps.group(2))}")
        elif re.fullmatch(r"(sample_)?\d+", stem):
            words.append(f"{'frame' if len(words) else 'sample'} {int(stem.split('_')[-1])}")
        else:
            words.append(stem.replace("_", " "))
    return ", ".join(words) if words else os.path.basename(rel)


def _natural_key(rel: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", rel)]


def collect_sections(output_dir: str) -> list[Section]:
    """Scans `output_dir` for the known visualization files and groups them by kind (empty kinds are left out)."""
    sections = []
    for key, pattern, title, caption in _KINDS:
        files = glob.glob(os.path.join(glob.escape(output_dir), pattern), recursive=True)  # e.g. results/e[x]-000
        rels = sorted((os.path.relpath(f, output_dir).replace(os.sep, "/") for f in files if os.path.isfile(f)),
                      key=_natural_key)
        rels = [r for r in rels if not os.path.basename(r).startswith(".")]
        if key.startswith("interpolations"):
            # each path's GIF first, then its frames
            rels = [r for r in rels if r.endswith((".gif", ".png"))]
            rels.sort(key=lambda r: _natural_key(r[:-4] if r.endswith(".gif") else r))
        if key in ("softmaps", "maps") and os.path.isfile(os.path.join(output_dir, "latent-colours.png")):
            rels.insert(0, "latent-colours.png")
        if rels:
            items = [(r, "colour of each latent, 0 first" if r == "latent-colours.png" else _caption(r))
                     for r in rels]
            sections.append(Section(key, title, caption, items, links_only=pattern.endswith(".npy")))
    return sections


def render_index(sections: list[Section], title: str) -> str:
    """The HTML text of the page."""
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
           f"<style>{_CSS}</style>", f"<script>{_SCRIPT}</script>", "</head><body>",
           f"<h1>{esc(title)}</h1>", '<div id="status"></div>']
    if not sections:
        out.append("<p>No visualizations in this folder yet.</p>")
    if len(sections) > 1:
        out.append("<p>" + " · ".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections) + "</p>")
    for s in sections:
        out.append(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2><p class="caption">{esc(s.caption)}</p>')
        if s.links_only:
            out.append('<ul class="links">' + "".join(
                f'<li><a href="{esc(urllib.parse.quote(r))}">{esc(r)}</a></li>' for r, _ in s.items) + "</ul>")
        else:
            out.append('<div class="items">')
            for rel, cap in s.items:
                src = esc(urllib.parse.quote(rel))
                out.append(f'<figure><a href="{src}"><img src="{src}" alt="{esc(cap)}" loading="eager"></a>'
                           f"<figcaption>{esc(cap)}</figcaption></figure>")
            out.append("</div>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_index(output_dir: str, title: str = "GANformer visualizations") -> str:
    """Writes `<output_dir>/index.html` (atomically) and returns its path."""
    path = os.path.join(output_dir, "index.html")
    save_text(path, render_index(collect_sections(output_dir), title))
    return path

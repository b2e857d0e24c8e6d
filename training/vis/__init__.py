"""Building blocks of the sampling and visualization tools (after the authors' `generate.py` and
`training/visualize.py`).

- `imageio`: grids, atomic PNG/GIF/.npy writers.
- `palette`: HLS palette and colouring of attention maps (soft, hard, blends).
- `sampler`: batched, compiled calls of a generator (z -> images/maps/ws, ws -> images/maps).
- `interpolation`: z-space slerp (per component) and w-space lerp paths.
- `style_mix`: layer-wise and component-wise style-mixing grids.
- `html_index`: the `index.html` page that shows every output grouped by kind.

`training.vis.visualize.vis` ties them together.
"""

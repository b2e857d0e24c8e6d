"""Projection of real images into a generator's latents (`generate.py --project`).

- `schedule`: the learning-rate ramp and the latent-noise schedule.
- `latents`: the optimized spaces (z, w, w+), their starting points and their conversion to ws.
- `perceptual`: the perceptual distance (VGG16 LPIPS when its file is present, else Inception features).
- `noise_maps`: per-image noise maps and their regularization.
- `projector`: the optimization loop.
- `targets`: reading and checking the images to project.
- `outputs`: the files written per target and for the run.
(the flags of `generate.py --project` and the run are the command line's: `training.cli.project`)

Edits of projected images (resample or swap one latent) are in `training.vis.latent_edit`.
"""

SPACES = ("z", "w", "w+")

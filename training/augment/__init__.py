"""Augmentation of the images the discriminator sees: StyleGAN2-ADA's pipeline and adaptive p, and DiffAugment.

Modules:
    pipeline     the ADA pipeline (`--augpipe`): the chosen transforms, each applied with probability p.
    geometry     its geometric part: per-sample 3x3 matrices and one resampling per image.
    color        its pixel-value part: colour matrices, image-space filtering, noise, cutout.
    diffaugment  DiffAugment's cheap differentiable transforms (`--diffaugment`).
    modes        the names of `--aug`'s modes (no TensorFlow).
    ada          the augmentation of a run (`--aug`) and the adjustment of p from the discriminator's outputs.
"""

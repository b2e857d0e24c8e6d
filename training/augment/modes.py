"""The augmentation modes of `--aug`, importable without TensorFlow (the command line checks them before it starts)."""

AUG_MODES = ("noaug", "ada", "fixed", "diffaugment")

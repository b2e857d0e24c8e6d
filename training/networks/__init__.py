"""GANformer and baseline networks as `tf.Module`s (spec §2)."""

"""TensorFlow building blocks with no knowledge of networks or files: the pure-TF ops in `dnnlib.tflib.ops`."""

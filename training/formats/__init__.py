"""Network and training-state files: what is written, what is read, and how the authors' files are taken in.

Modules:
    archive         our data-only, versioned network file (zip of JSON + .npy; nothing in it is executed).
    networks        loading and saving networks: our snapshots, the authors' TF1 pickles, catalog names.
    checkpoint      the full training state (networks, EMA, optimizers, progress, RNG) for exact resumes.
    tf1_pickle      a restricted reader of the authors' TF1 pickles (no code of theirs is run).
    legacy_convert  the authors' TF1 variables -> our configs and variables.
    pretrained      the authors' released checkpoints: names, URLs, checksums, resolution to local files.
    export          a generator as a TensorFlow SavedModel that needs nothing from this project.
"""

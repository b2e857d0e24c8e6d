"""Dataset preparation library behind `prepare_data.py` (the authors' `prepare_data.py` and `dataset_tool.py`).

Modules:
    catalog     the paper's datasets (URLs, md5s, sizes, ratios, gammas), download and install.
    archive     zip checks and extraction that refuses escaping members.
    preprocess  the authors' per-image preprocessing (crop to ratio, pad, Lanczos resize).
    sources     readers of custom images: folders, zips, npy, hdf5, lmdb, tfds.
    labels      class labels from labels.json / CSV / sub-folder names.
    records     the on-disk TFRecord layouts (ours and the original's).
    writer      atomic sharded TFRecord writer plus `dataset.json`.
    convert     the conversion pipeline with progress bar and summary.
    shapes      the built-in procedurally rendered multi-object dataset (shapes_render: shading).
    files, parallel  image file listing; an ordered thread-pool map.
"""

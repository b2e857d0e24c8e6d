"""Network file formats: reading the authors' TF1 pickles, the checkpoint catalog, and our data-only snapshots.

Importing this package does not import TensorFlow; the TF ops live in `dnnlib.tflib.ops`.
"""

from dnnlib.tflib.catalog import CATALOG, CatalogEntry, catalog_names, resolve_network_path
from dnnlib.tflib.legacy import LegacyCheckpoint, LegacyNetwork, is_legacy_pickle, read_legacy_pickle
from dnnlib.tflib.snapshot import is_snapshot, read_snapshot, write_snapshot

__all__ = [
    "CATALOG", "CatalogEntry", "catalog_names", "resolve_network_path",
    "LegacyCheckpoint", "LegacyNetwork", "is_legacy_pickle", "read_legacy_pickle",
    "is_snapshot", "read_snapshot", "write_snapshot",
]

"""Small framework utilities shared by the training, metrics and data code."""

from dnnlib.util import EasyDict, UserError

__all__ = ["EasyDict", "UserError"]

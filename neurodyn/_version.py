"""The installed package's version (read once from its metadata; the lowest layer, so that
every subpackage can record it without importing the top-level package)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurodyn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

"""rnnbench's version, as installed (a leaf: the report and the rows name it without importing the
rest of the package)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnnbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

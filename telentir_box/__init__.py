"""telentir-box: a self-hosted, single-tenant Telentir and Renchi back end."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("telentir-box")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

"""The version, apart from the package's __init__ so that modules can import it without a circle."""

__version__ = "0.1.0"

"""fastpe's version: one place, read by the package root, show_config and the build (pyproject.toml)."""

__version__ = "0.1.0"

"""reloadbot: an IRC bot whose command modules are replaced live."""

__version__ = "0.1.0"

"""Built-in check types: one module per type, each a plugin listed in ``DEFAULT_PLUGINS``."""

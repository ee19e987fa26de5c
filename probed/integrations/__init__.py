"""Built-in integrations with services around probed, each an ordinary plugin.

They are listed in :data:`probed.plugins.DEFAULT_PLUGINS` like the built-in check types and use
only the public hooks. An integration does nothing, and imports nothing heavy, until it is
configured (for example ``sentry`` when ``SENTRY_DSN`` is set).
"""

"""probed-hello: the ``hello`` check type for probed (see :mod:`probed_hello.plugin`)."""

__version__ = "0.1.0"

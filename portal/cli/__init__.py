"""The ``portal`` command line: one module per group of commands, assembled in ``program``.

``context`` holds what every command shares (settings, failures, the person acting); ``server``
runs the portal itself; ``client`` is what the API client commands (``upload``, ``download``)
share. Exit status: 0 success, 1 the thing checked failed, 2 usage error.
"""

from portal.cli.program import main

__all__ = ["main"]

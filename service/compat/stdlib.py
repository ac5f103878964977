"""Standard library internals.

`logging._srcfile`: set to None, logging does not walk the stack for the caller's file and line
on every record. It is the switch the logging HOWTO itself documents ("Optimization": "Set
`logging._srcfile` to None"); tests/compat/test_stdlib.py fails if a Python release drops it.
"""

from __future__ import annotations

import logging


def skip_caller_lookup() -> None:
    """No record gets its caller's file and line (neither log format prints them)."""
    logging._srcfile = None

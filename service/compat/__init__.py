"""Every place the service reaches into a library's internals, one module per library.

Each module names the internal it uses, the upstream issue that explains why, and the versions it
was checked with (the upper bounds in pyproject.toml); tests/compat/ fails when a library moves
the internal. Everywhere else ruff's SLF001 refuses private access.
"""

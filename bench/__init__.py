"""The benchmarks: run.py (the suite: scenarios.py, processes.py, report.py), the floors and the
peer it compares against, and the single-purpose measurements (inproc, caller_cache, http_protocols)."""

"""Summarise py-spy raw stacks: inclusive and self share of samples per function.

    uv run python bench/profile_summary.py STACKS [THREAD]

With THREAD (py-spy recorded with --threads; e.g. MainThread, the event loop), only the stacks
of that thread are counted."""

from __future__ import annotations

import collections
import re
import sys


def main(path: str, thread: str | None = None) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if thread is not None and f"): {thread};" not in stack:
            continue
        samples = int(count)
        total += samples
        frames = [re.sub(r":\d+\)", ")", frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    print(f"{total} samples" + (f" of {thread}" if thread else ""))
    print("inclusive (service, litestar, asyncpg, jwt, logging):")
    for frame, samples in inclusive.most_common(80):
        if any(part in frame for part in ("service/", "litestar/", "asyncpg/", "jwt/", "logging/")):
            print(f"  {samples / total:6.1%}  {frame[:130]}")
    print("self:")
    for frame, samples in own.most_common(20):
        print(f"  {samples / total:6.1%}  {frame[:130]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)

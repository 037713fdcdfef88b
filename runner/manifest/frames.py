"""Frame ranges as render farms write them: `1-10`, `1,3,5-10`, `7`.

Frames keep the order they were written in and duplicates are dropped, so a list like `5,1-3,2`
renders 5, 1, 2, 3. Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["FrameError", "parse_frames"]

_PART = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+)\s*)?$")
MAX_FRAMES = 1_000_000


class FrameError(ValueError):
    """A frame range that cannot be understood; the message says how to write it."""


def parse_frames(spec: str | int) -> list[int]:
    """Expand a frame specification into an ordered list of distinct frame numbers."""
    if isinstance(spec, bool):
        raise FrameError("expected frames like '1-10' or '1,3,5-10', got a boolean")
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str) or not spec.strip():
        raise FrameError("expected frames like '1-10' or '1,3,5-10', got an empty value")
    seen: dict[int, None] = {}
    for raw in spec.split(","):
        m = _PART.match(raw)
        if m is None:
            raise FrameError(
                f"{raw.strip()!r} is not a frame or range; write frames like '1-10' or '1,3,5-10'"
            )
        try:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) is not None else start
        except ValueError:  # more digits than Python converts from text
            raise FrameError(f"{raw.strip()[:20]!r}... is not a frame number") from None
        if end < start:
            raise FrameError(f"range {raw.strip()!r} runs backwards; write it as '{end}-{start}'")
        if end - start + len(seen) >= MAX_FRAMES:
            raise FrameError(f"range {raw.strip()!r} has more than {MAX_FRAMES:,} frames")
        for f in range(start, end + 1):
            seen.setdefault(f, None)
    return list(seen)

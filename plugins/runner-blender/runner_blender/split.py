"""Spreading frames over instances, and writing them the way Blender's `-f` reads them.

Pure functions, no I/O.
"""

from __future__ import annotations

__all__ = ["balanced", "blender_frames", "by_chunk", "frame_runs", "human_frames"]


def balanced(frames: list[int], instances: int) -> list[list[int]]:
    """Contiguous chunks, one per instance, sizes differing by at most one: with n frames on
    k instances the first n mod k instances get one frame more (the BatchCompute framer).
    Instances beyond the number of frames get an empty chunk."""
    size, extra = divmod(len(frames), instances)
    out, start = [], 0
    for i in range(instances):
        end = start + size + (1 if i < extra else 0)
        out.append(frames[start:end])
        start = end
    return out


def by_chunk(frames: list[int], chunk: int) -> list[list[int]]:
    """`chunk` frames per instance (the last may have fewer); at least one instance."""
    return [frames[i : i + chunk] for i in range(0, len(frames), chunk)] or [[]]


def frame_runs(frames: list[int]) -> list[tuple[int, int]]:
    """Consecutive frames as (first, last) pairs, in order."""
    runs: list[tuple[int, int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs


def blender_frames(frames: list[int]) -> str:
    """`1..4,7` for Blender's `-f` (it renders nothing for `1-4` and still exits 0)."""
    return ",".join(str(a) if a == b else f"{a}..{b}" for a, b in frame_runs(frames))


def human_frames(frames: list[int]) -> str:
    """`1-4,7`, as people (and the manifest) write frames."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in frame_runs(frames))

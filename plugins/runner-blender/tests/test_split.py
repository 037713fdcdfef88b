"""The frame splitter: every frame exactly once, in order, chunk sizes within one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from runner_blender.split import balanced, blender_frames, by_chunk, human_frames

from runner.manifest.frames import parse_frames

frame_lists = st.lists(st.integers(0, 5000), unique=True, max_size=300)


@given(frame_lists, st.integers(1, 64))
def test_balanced_covers_every_frame_once_in_order(frames: list[int], k: int) -> None:
    chunks = balanced(frames, k)
    assert len(chunks) == k
    assert [f for c in chunks for f in c] == frames
    sizes = [len(c) for c in chunks]
    assert max(sizes) - min(sizes) <= 1
    # the first n mod k instances get the extra frame
    assert sizes == sorted(sizes, reverse=True)
    assert sizes.count(len(frames) // k + 1) == (len(frames) % k if len(frames) % k else 0)


@given(frame_lists, st.integers(1, 50))
def test_chunk_sizes(frames: list[int], size: int) -> None:
    chunks = by_chunk(frames, size)
    assert [f for c in chunks for f in c] == frames
    assert all(len(c) == size for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= size or frames == []


def test_the_classic_framer() -> None:
    assert balanced(list(range(1, 11)), 3) == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]]
    assert balanced([1, 2], 4) == [[1], [2], [], []]
    assert by_chunk(list(range(1, 8)), 3) == [[1, 2, 3], [4, 5, 6], [7]]


@given(frame_lists)
def test_frame_syntax_round_trips(frames: list[int]) -> None:
    if frames:
        assert parse_frames(human_frames(frames)) == frames
        # Blender's syntax: ranges with `..`, never `-` (which it silently ignores)
        text = blender_frames(frames)
        assert "-" not in text
        assert parse_frames(text) == frames


def test_order_kept_and_duplicates_dropped() -> None:
    frames = parse_frames("5,1-3,2")
    assert frames == [5, 1, 2, 3]
    assert balanced(frames, 2) == [[5, 1], [2, 3]]
    assert blender_frames([5, 1, 2, 3]) == "5,1..3"

"""The `blender` task kind: a frame range spread over instances, rendered by headless Blender,
and every frame checked on disk.

An App of this kind takes the parameters of the classic BatchCompute Blender App:

    scene                 the .blend file, relative to the task's `input` folder
    frames                `1-10`, `1,3,5-10` (order kept, duplicates dropped)
    format                PNG, JPEG, OPEN_EXR, ... (checked by `runner validate`)
    output_name_format    `####.png`: `#`s become the zero-padded frame number; may hold a
                          sub-directory. Frames land in `<output>/result/`.
    engine                CYCLES, BLENDER_EEVEE or BLENDER_WORKBENCH (default: the file's)
    threads, samples, resolution_percentage
    chunk                 frames per instance; the instance count is then derived

With `command: blender` (the kind's default command: an App or task of this kind that writes
no `command:` gets it) or the path of a Blender, the kind writes the command line itself,
avoiding Blender's traps: frames as `a..b` (it renders nothing for `a-b` and exits 0), `-o`
before `-f`, `--python-exit-code 1` before `--python-expr`, the output format checked before
Blender silently falls back to the file's. Any other command is a custom command line: it
gets `$<frames>` (Blender syntax), `$<frame_start>`, `$<frame_end>` and `$<result>`.

An instance succeeds only when every frame of its chunk exists and (with the built-in
command) Blender reported it saved or skipped it as done. A first attempt removes the chunk's
old frame files, so an older run's frame never passes for this one's; a retry keeps what
earlier attempts saved (unless a file does not load as an image) and renders only the rest.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.contracts import (
    FrameError,
    InstanceSpec,
    KindBase,
    Task,
    command_argv,
    parse_frames,
    render,
)
from runner_blender.split import balanced, blender_frames, by_chunk, frame_runs, human_frames

__all__ = ["IMAGE_FORMATS", "BlenderKind"]

# what `-F` writes as still images, with the extension Blender gives each (measured with
# Debian's 3.4.1: CINEON and DDS fail to save, the movie formats write one file, not frames)
IMAGE_FORMATS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "BMP": ".bmp",
    "TGA": ".tga",
    "RAWTGA": ".tga",
    "IRIS": ".rgb",
    "TIFF": ".tif",
    "OPEN_EXR": ".exr",
    "OPEN_EXR_MULTILAYER": ".exr",
    "HDR": ".hdr",
    "DPX": ".dpx",
    "JP2": ".jp2",
    "WEBP": ".webp",
}
_EXTENSIONS = {".jpeg": "JPEG", ".tiff": "TIFF", ".j2c": "JP2"}
MAX_FRAME = 1_048_574  # Blender clamps higher frames; it reads negative ones as relative
ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")
_HASHES = re.compile(r"#+")
_SAVED = re.compile(r"^Saved: '(.*)'", re.M)
_SKIPPED = re.compile(r'^skipping existing frame "(.*)"', re.M)
_ERROR = re.compile(
    r"^(Error|ERROR)\b|Cannot |Unable to|Not a directory|Permission denied|No camera|"
    r"^\w+(Error|Exception): "
)
PLACEHOLDERS = frozenset({"frames", "frame_start", "frame_end", "result"})

# Run by Blender before it renders. Only typed, validated numbers are put into it.
_SETUP = """\
import bpy, os, re
s = bpy.context.scene
r = s.render
r.use_file_extension = False
r.use_placeholder = False
# The chunk's frame files. The first attempt of a run to get here starts clean: a frame an
# older run left behind must not pass for this run's. A later attempt keeps (and Blender
# skips) the frames earlier ones saved, except files that do not load as images (cut short
# when an attempt was killed). The marker file says which run last prepared this chunk.
out, runs, marker = {out!r}, {runs!r}, {marker!r}
run = os.environ.get('RUNNER_RUN_ID', '')
try:
    with open(marker) as f:
        first = f.read() != run
except OSError:
    first = True
last = list(re.finditer('#+', out))[-1]
for a, b in runs:
    for f in range(a, b + 1):
        path = out[:last.start()] + str(f).zfill(len(last.group())) + out[last.end():]
        if os.path.isfile(path) and not first:
            try:
                img = bpy.data.images.load(path)
                ok = img.size[0] > 0 and img.size[1] > 0
                bpy.data.images.remove(img)
            except RuntimeError:
                ok = False
            if ok:
                continue
        if os.path.isfile(path):
            os.remove(path)
os.makedirs(os.path.dirname(marker), exist_ok=True)
with open(marker, 'w') as f:
    f.write(run)
r.use_overwrite = False
{extra}\
try:
    import _cycles
    oidn = getattr(_cycles, 'with_openimagedenoise', True)
except ImportError:
    oidn = True
if not oidn:
    for holder in (getattr(s, 'cycles', None), getattr(bpy.context.view_layer, 'cycles', None)):
        if holder is not None and getattr(holder, 'use_denoising', False):
            holder.use_denoising = False
            print('runner: this Blender has no OpenImageDenoise; denoising turned off')
"""


def _param(task: Task, name: str) -> Any:
    value = task.params.get(name)
    return None if value in (None, "") else value


def _is_blender(command: str | list[str]) -> str | None:
    """The program, when the command is just a Blender to drive."""
    try:
        parts = shlex.split(command) if isinstance(command, str) else command
    except ValueError:
        return None
    if len(parts) == 1 and Path(parts[0]).name.startswith("blender") and "$<" not in parts[0]:
        return parts[0]
    return None


def frame_path(result: Path, pattern: str, frame: int) -> Path:
    """Where `frame` lands: the last run of `#` becomes the zero-padded frame number."""
    runs = list(_HASHES.finditer(pattern))
    last = runs[-1]
    number = str(frame).zfill(len(last.group()))
    return result / (pattern[: last.start()] + number + pattern[last.end() :])


def output_pattern(task: Task) -> str:
    """`output_name_format` with the format's extension when it has none."""
    fmt = str(_param(task, "format") or "PNG").upper()
    pattern = str(_param(task, "output_name_format") or "####")
    if not Path(pattern).suffix:
        pattern += IMAGE_FORMATS.get(fmt, "")
    return pattern


class BlenderKind(KindBase):
    """Renders frame chunks with headless Blender; success means every frame is on disk."""

    # the Blender on PATH, driven by the built-in command line (see the module's docstring)
    default_command = "blender"
    placeholders = PLACEHOLDERS

    def check(
        self, *, task: Task, upstream_outputs: Mapping[Path, str] | None = None
    ) -> list[tuple[str | None, str, str | None]]:
        """Problems `runner validate` reports: (parameter or None, message, hint)."""
        out: list[tuple[str | None, str, str | None]] = []
        if _param(task, "scene") is None:
            out.append((None, "a blender task needs the parameter 'scene'", "the .blend file"))
        if _param(task, "frames") is None:
            out.append((None, "a blender task needs the parameter 'frames'", "e.g. '1-10'"))
        else:
            try:
                frames = parse_frames(task.params["frames"])
            except FrameError as e:
                out.append(("frames", str(e), None))
            else:
                bad = [f for f in frames if not 0 <= f <= MAX_FRAME]
                if bad:
                    out.append(
                        (
                            "frames",
                            f"frame {bad[0]} is out of Blender's range",
                            f"frames run from 0 to {MAX_FRAME}",
                        )
                    )
        fmt = str(_param(task, "format") or "PNG")
        if fmt.upper() not in IMAGE_FORMATS:
            out.append(
                (
                    "format",
                    f"Blender cannot write frames as {fmt!r} (it would silently fall back to "
                    "the file's own format)",
                    "one of " + ", ".join(IMAGE_FORMATS),
                )
            )
        pattern = str(_param(task, "output_name_format") or "####")
        suffix = Path(pattern).suffix.lower()
        if "#" not in Path(pattern).name:
            out.append(
                (
                    "output_name_format",
                    f"{pattern!r} has no '#' for the frame number",
                    "write it like '####.png' (four digits, zero-padded)",
                )
            )
        elif pattern.startswith("/") or ".." in Path(pattern).parts or "\\" in pattern:
            out.append(
                (
                    "output_name_format",
                    f"{pattern!r} must stay inside the output folder",
                    "a relative name such as 'shots/####.png'",
                )
            )
        elif suffix and fmt.upper() in IMAGE_FORMATS:
            wanted = IMAGE_FORMATS[fmt.upper()]
            if suffix != wanted and _EXTENSIONS.get(suffix) != fmt.upper():
                out.append(
                    (
                        "output_name_format",
                        f"{pattern!r} ends in {suffix!r} but the format is {fmt.upper()}",
                        f"end it in {wanted!r}, or leave the extension out",
                    )
                )
        engine = _param(task, "engine")
        if engine is not None and str(engine) not in ENGINES:
            out.append(
                ("engine", f"unknown render engine {engine!r}", "one of " + ", ".join(ENGINES))
            )
        for name, low, high in (
            ("threads", 0, 1024),
            ("samples", 1, 1 << 24),
            ("resolution_percentage", 1, 100),
            ("chunk", 1, 1_000_000),
        ):
            value = _param(task, name)
            if value is None:
                continue
            try:
                number = int(value)
            except (TypeError, ValueError):
                out.append((name, f"{name} must be a whole number, got {value!r}", None))
                continue
            if not low <= number <= high:
                out.append((name, f"{name} must be between {low} and {high}, got {number}", None))
        output = task.outputs.get("output")
        if not output:
            out.append(
                (None, "a blender task needs an output 'output' (frames go to its result/)", None)
            )
        elif "://" in output:
            out.append((None, f"output {output!r}: only local folders are supported yet", None))
        return out

    def chunks(self, task: Task) -> list[list[int]]:
        frames = parse_frames(task.params["frames"])
        chunk = _param(task, "chunk")
        return by_chunk(frames, int(chunk)) if chunk else balanced(frames, task.instances)

    def expand(self, *, task: Task) -> list[InstanceSpec]:
        """One instance per chunk of frames."""
        result = Path(task.outputs["output"]) / "result"
        pattern = output_pattern(task)
        folder = Path(task.inputs["input"]) if task.inputs.get("input") else task.workdir
        scene = folder / str(task.params["scene"])
        program = _is_blender(task.command)
        chunks = self.chunks(task)
        base = {**task.values(), "instance_count": str(len(chunks))}
        specs = []
        for i, frames in enumerate(chunks):
            values = {
                **base,
                "instance_id": str(i),
                "frames": blender_frames(frames),
                "frame_start": str(frames[0]) if frames else "",
                "frame_end": str(frames[-1]) if frames else "",
                "result": str(result),
            }
            env = {k: render(v, values, quote=False) for k, v in task.env.items()}
            extra = {"frames": human_frames(frames), "result": str(result / pattern)}
            if not frames:
                argv = ["/bin/sh", "-c", f"echo 'nothing to do: instance {i} has no frames'"]
                specs.append(InstanceSpec(i, argv, env, "no frames", fingerprint_extra=extra))
                continue
            if program is not None:
                argv = self._blender_argv(task, program, scene, result / pattern, frames, i)
            else:
                argv = command_argv(task.command, values)
            specs.append(
                InstanceSpec(
                    i, argv, env, f"frames {human_frames(frames)}", fingerprint_extra=extra
                )
            )
        return specs

    @staticmethod
    def _blender_argv(
        task: Task, program: str, scene: Path, out: Path, frames: list[int], index: int
    ) -> list[str]:
        lines = []
        percentage = _param(task, "resolution_percentage")
        if percentage is not None:
            lines.append(f"r.resolution_percentage = {int(percentage)}")
        samples = _param(task, "samples")
        if samples is not None:
            n = int(samples)
            lines.append(f"if hasattr(s, 'cycles'): s.cycles.samples = {n}")
            lines.append(f"s.eevee.taa_render_samples = {n}")
        marker = Path(task.outputs["output"]) / ".runner" / f"{task.job}.{task.name}.{index}"
        setup = _SETUP.format(
            out=str(out),
            runs=frame_runs(frames),
            marker=str(marker),
            extra="".join(line + "\n" for line in lines),
        )
        argv = [program, "-b", str(scene)]
        engine = _param(task, "engine")
        if engine is not None:
            argv += ["-E", str(engine)]
        threads = _param(task, "threads")
        if threads is not None:
            argv += ["-t", str(int(threads))]
        # --python-exit-code before --python-expr, -o and -F before -f: Blender reads its
        # arguments in order, and -f renders at once
        argv += ["--python-exit-code", "1", "--python-expr", setup]
        argv += ["-o", str(out), "-F", str(_param(task, "format") or "PNG").upper()]
        argv += ["-f", blender_frames(frames)]
        return argv

    def explain(self, *, task: Task, exit_code: int, stdout: Path, stderr: Path) -> str | None:
        """Blender's own words for a failure (it prints its errors on stdout)."""
        if exit_code in (134, 139):
            return "Blender crashed" + (" (SIGABRT)" if exit_code == 134 else " (SIGSEGV)")
        found = None
        for path in (stdout, stderr):
            try:
                with path.open("rb") as f:
                    f.seek(max(0, path.stat().st_size - 65536))
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                line = line.strip()
                if _ERROR.search(line) and "EGL Error" not in line:
                    found = line
        return found[:300] if found else None

    def verify(
        self, *, task: Task, instance: InstanceSpec, stdout: Path, stderr: Path
    ) -> str | None:
        """Every frame of the chunk on disk, and (built-in command) reported by Blender."""
        if instance.description == "no frames":
            return None
        frames = parse_frames(instance.fingerprint_extra["frames"])
        result = Path(task.outputs["output"]) / "result"
        pattern = output_pattern(task)
        reported: set[str] | None = None
        if _is_blender(task.command) is not None:
            try:
                text = stdout.read_text(errors="replace")
            except OSError:
                text = ""
            reported = set(_SAVED.findall(text)) | set(_SKIPPED.findall(text))
        missing = []
        for f in frames:
            path = frame_path(result, pattern, f)
            try:
                ok = path.is_file() and path.stat().st_size > 0
            except OSError:
                ok = False
            if not ok or (reported is not None and str(path) not in reported):
                missing.append(f)
        if not missing:
            return None
        where = frame_path(result, pattern, missing[0])
        return (
            f"frames not rendered: {human_frames(missing)} of {human_frames(frames)} "
            f"(e.g. no {where}); a retry renders only those"
        )

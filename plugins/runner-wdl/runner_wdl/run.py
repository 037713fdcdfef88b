"""What one `wdl` instance runs: a workflow on the embedded miniwdl engine.

    python -m runner_wdl.run --workflow W.wdl (--inputs-json '{...}' --base DIR
                             | --inputs-file FILE) [--out DIR]
                             [--run-dir DIR] [--cache-dir DIR]

The run folder defaults to `$RUNNER_STATE_DIR/wdl/<job>/<task>/<run>.<attempt>`, the call
cache to `$RUNNER_STATE_DIR/wdl/call-cache` (the engine sets those variables).

Relative file paths in the inputs are taken from `--base`. miniwdl's log goes to stderr (and
`workflow.log` in the run folder); the outputs, as miniwdl's JSON, to stdout. With `--out`,
every output file is copied to `<out>/<output name>/` and `<out>/outputs.json` lists the
copies. Finished calls are kept in the call cache, so a rerun after a fixed failure does only
what is left. Exit codes: 0 done, 1 the workflow failed, 2 bad inputs, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import WDL
import WDL.runtime
import yaml
from WDL.runtime.error import RunFailed, Terminated

__all__ = ["main", "miniwdl_config"]


def miniwdl_config(logger: logging.Logger, cache_dir: Path, backend: str = "runner_host") -> Any:
    """miniwdl's settings for the runner: the backend (the container-less host backend unless
    a container engine is asked for), the call cache in `cache_dir`."""
    return WDL.runtime.config.Loader(
        logger,
        filenames=[],  # the machine's own miniwdl.cfg does not change what a manifest runs
        overrides={
            "scheduler": {"container_backend": backend},
            "call_cache": {"get": "true", "put": "true", "dir": str(cache_dir)},
            # miniwdl asks `sudo podman` by default; as root, or with rootless podman, the
            # plain command is the one that works (Debian has no sudo by default)
            "podman": {"exe": json.dumps(["podman"] if _plain_podman() else ["sudo", "podman"])},
        },
    )


def _plain_podman() -> bool:
    """Whether `podman` is to be run as it is: as root, or when there is no sudo anyway."""
    import shutil

    return os.geteuid() == 0 or shutil.which("sudo") is None


def read_inputs(path: Path) -> dict[str, Any]:
    """An inputs file: JSON, or YAML (by its name)."""
    text = path.read_text()
    loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a mapping of input names to values")
    return loaded


def namespaced_inputs(doc: Any, given: dict[str, Any], base: Path) -> dict[str, Any]:
    """Inputs as Cromwell takes them: `workflow.input` keys, absolute paths. `doc` is the
    loaded WDL document."""
    exe = doc.workflow or doc.tasks[0]
    env = WDL.values_from_json(given, exe.available_inputs, exe.required_inputs, namespace=exe.name)
    env = _absolute(env, base)
    return dict(WDL.values_to_json(env, namespace=exe.name))


def _absolute(env: Any, base: Path) -> Any:
    def fix(v: Any) -> str:
        return str((base / v.value).resolve()) if not os.path.isabs(v.value) else v.value

    return WDL.Value.rewrite_env_paths(env, fix)


def _copy_outputs(outputs: dict[str, Any], out: Path) -> dict[str, Any]:
    """Copy every output file or folder below `out/<output name>/`; the JSON, rewritten."""

    def copy(value: Any, name: str) -> Any:
        if isinstance(value, str) and os.path.exists(value) and os.path.isabs(value):
            dest = Path(out, name, os.path.basename(value.rstrip("/")))
            dest.parent.mkdir(parents=True, exist_ok=True)
            if os.path.isdir(value):
                shutil.copytree(value, dest, dirs_exist_ok=True)
            else:
                shutil.copyfile(value, dest)
            return str(dest)
        if isinstance(value, list):
            # elements (a scatter's shards) may share a file name: each keeps its own folder
            # when they do
            names = [os.path.basename(str(v).rstrip("/")) for v in value]
            if len(set(names)) == len(names):
                return [copy(v, name) for v in value]
            return [copy(v, f"{name}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: copy(v, name) for k, v in value.items()}
        return value

    return {key: copy(value, key.rsplit(".", 1)[-1]) for key, value in outputs.items()}


def _why(e: BaseException) -> tuple[str, str]:
    """(the chain of causes of a failed run, one line: which call failed and why)."""
    lines, call_dir, last = [], None, str(e)
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, RunFailed):
            lines.append(f"{type(cause).__name__}: {cause} ({cause.run_dir})")
            call_dir = cause.run_dir
        else:
            last = f"{type(cause).__name__}: {cause}"
            lines.append(last)
        cause = cause.__cause__
    summary = last
    if call_dir:
        summary = f"{os.path.basename(call_dir.rstrip('/'))} failed: {last}"
        try:
            said = Path(call_dir, "stderr.txt").read_text(errors="replace").strip()
        except OSError:
            said = ""
        if said:
            summary += f"; its stderr ends: {said.splitlines()[-1][:300]}"
    return "\n  ".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="runner_wdl.run")
    ap.add_argument("--workflow", required=True)
    ap.add_argument("--inputs-json", default="{}")
    ap.add_argument("--inputs-file", help="JSON or YAML; its paths are relative to it")
    ap.add_argument("--base", default=".")
    state = Path(os.environ.get("RUNNER_STATE_DIR") or ".runner") / "wdl"
    where = [os.environ.get(v, "by-hand") for v in ("RUNNER_JOB", "RUNNER_TASK")]
    attempt = f"{os.environ.get('RUNNER_RUN_ID', 0)}.{os.environ.get('RUNNER_ATTEMPT', 1)}"
    ap.add_argument("--run-dir", default=str(state.joinpath(*where, attempt)))
    ap.add_argument("--cache-dir", default=str(state / "call-cache"))
    ap.add_argument("--out")
    ap.add_argument("--backend", default="runner_host", help="miniwdl's container backend")
    args = ap.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    logger = logging.getLogger("runner-wdl")
    doc = WDL.load(args.workflow)
    exe = doc.workflow or (doc.tasks[0] if len(doc.tasks) == 1 else None)
    if exe is None:
        print(f"{args.workflow}: no workflow (and more than one task)", file=sys.stderr)
        return 2
    try:
        given = json.loads(args.inputs_json)
        if args.inputs_file:  # a big inputs file travels by name, not in the command line
            given = read_inputs(Path(args.inputs_file))
            args.base = str(Path(args.inputs_file).resolve().parent)
        inputs = WDL.values_from_json(
            given,
            exe.available_inputs,
            exe.required_inputs,
            namespace=exe.name,
        )
    except WDL.Error.InputError as e:
        print(f"{args.workflow}: inputs: {e}", file=sys.stderr)
        return 2
    inputs = _absolute(inputs, Path(args.base))
    cfg = miniwdl_config(logger, Path(args.cache_dir), args.backend)
    Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    try:
        run_dir, outputs = WDL.runtime.run(cfg, exe, inputs, run_dir=args.run_dir + "/.")
    except RunFailed as e:
        if isinstance(e.__cause__, Terminated):
            print("runner-wdl: cancelled", file=sys.stderr)
            return 130
        chain, summary = _why(e)
        print(f"runner-wdl: the workflow failed:\n  {chain}", file=sys.stderr)
        print(f"runner-wdl: {summary}", file=sys.stderr)
        return 1
    result = WDL.values_to_json(outputs, namespace=exe.name)
    if args.out:
        out = Path(args.out)
        result = _copy_outputs(result, out)
        (out / "outputs.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps(result, indent=1, sort_keys=True))
    logger.info("run folder: %s", run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The manifest's shape: pydantic v2 models for the `App`, `Cluster` and `Job` documents.

Unknown keys are errors everywhere (`extra="forbid"`). Keys are written in the manifest's own
spelling (`apiVersion`, `dependsOn`, `retryOn`) through aliases. The JSON Schema in `schemas/`
is generated from these models (`runner schema`). Cross-document checks (names, cycles) live
in `runner.manifest.loader`, a task's resolution over its App in `runner.manifest.resolve` and
the placeholder rules in `runner.manifest.declarations`, not here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from runner.manifest.durations import parse_duration
from runner.manifest.params import ParamSpec

__all__ = [
    "API_VERSION",
    "AppDoc",
    "AppSpec",
    "ClusterDoc",
    "ClusterSpec",
    "JobDoc",
    "JobSpec",
    "Metadata",
    "TaskSpec",
    "document_schema",
]

API_VERSION = "runner/v1"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _scalar_text(v: Any) -> Any:
    """YAML gives `PORT: 80` as an int; environment values are text, so accept scalars."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


def _duration(v: Any) -> Any:
    """Check a duration before pydantic would turn `true` into 1 second."""
    if isinstance(v, (str, int, float)):
        parse_duration(v)
    return v


# the schema says what is accepted, so that editors do not underline `PORT: 80`
Text = Annotated[
    str,
    BeforeValidator(_scalar_text),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]
# Strict: YAML already gives integers; `instances: yes` must not quietly mean 1.
Int = Annotated[int, Strict()]
Duration = Annotated[
    str | float,
    BeforeValidator(_duration),
    Field(description="seconds, or text like '30s', '15m', '2h', '1h30m'"),
]


def _command(v: str | list[str]) -> str | list[str]:
    """A command must run something: no empty string, list, or program name."""
    if isinstance(v, str) and not v.strip():
        raise ValueError("the command is empty; write what to run")
    if isinstance(v, list) and (not v or not v[0].strip()):
        raise ValueError("a command list starts with the program to run, like [echo, hi]")
    return v


Command = Annotated[
    str | list[Text],
    AfterValidator(_command),
    Field(
        description="a string runs through /bin/sh with every $<value> shell-quoted; "
        "a list runs without a shell, one argument per item"
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Env(_Model):
    env: dict[str, Text] = Field(default_factory=dict, description="environment variables")

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not ENV_NAME.match(k):
                raise ValueError(
                    f"{k!r} is not a valid environment variable name (letters, digits, '_')"
                )
        return v


class Metadata(_Model):
    """Names a document; other documents refer to it by this name."""

    name: Name
    description: str | None = None
    labels: dict[str, Text] = Field(default_factory=dict)


class IOSpec(_Model):
    """An input or output slot of an App: where the data appears for the command."""

    path: str | None = Field(default=None, description="local path the data is mapped to")
    description: str | None = None


PullPolicy = Literal["IfNotPresent", "Always", "Never"]
Runtime = Literal["podman", "docker"]


class _Container(_Model):
    """Running the command in an OCI image (the App's revision is the image's tag)."""

    image: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        default=None, description="OCI image the command runs in, e.g. registry/tool:1.2"
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None, alias="imagePullPolicy",
        description="IfNotPresent (default): pull when not here; Always; Never",
    )  # fmt: skip
    runtime: Runtime | None = Field(
        default=None, description="podman or docker (default: podman if installed)"
    )
    run_args: list[str] | None = Field(
        default=None, alias="runArgs", description="more arguments for `podman run`"
    )

    @field_validator("image")
    @classmethod
    def _image_name(cls, v: str | None) -> str | None:
        if v is not None and (v != v.strip() or any(c.isspace() for c in v) or v[0] == "-"):
            raise ValueError(f"{v!r} is not an image reference; write it like 'busybox:1.36'")
        return v


class AppSpec(_Env, _Container):
    """A reusable command template with typed parameters."""

    kind: Name = Field(default="shell", description="task kind plugin (runner plugins)")
    # optional here: the loader applies the kind's default (Kind.default_command), or reports
    # the missing command when the kind has none
    command: Command | None = Field(
        default=None,
        description="what to run, as in a task; leave it out to run the kind's default "
        "command, where the kind has one (blender's: `blender`)",
    )
    params: dict[Name, ParamSpec] = Field(default_factory=dict)
    inputs: dict[Name, IOSpec] = Field(default_factory=dict)
    outputs: dict[Name, IOSpec] = Field(default_factory=dict)
    instances: Int | None = Field(default=None, ge=1, le=100_000)
    timeout: Duration | None = None
    retries: Int | None = Field(default=None, ge=0, le=100)
    retry_on: list[Int] | None = Field(default=None, alias="retryOn")
    description: str | None = None


class AppDoc(_Model):
    """`kind: App`."""

    api_version: Literal["runner/v1"] = Field(alias="apiVersion")
    kind: Literal["App"]
    metadata: Metadata
    spec: AppSpec


class GroupSpec(_Model):
    """Hosts of a cluster that run work together (an SGE host group with a queue of its own;
    `runner cluster apply` creates and resizes it)."""

    hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(min_length=1)
    slots: Int = Field(default=1, ge=1, le=100_000, description="slots on each host")


class ClusterSpec(_Model):
    """Where work runs: an executor and its settings."""

    executor: Name = Field(default="local", description="executor plugin (runner plugins)")
    slots: Int | None = Field(
        default=None, ge=1, le=100_000, description="instances run at once (default: CPUs)"
    )
    queue: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict, description="executor-specific settings")
    groups: dict[Name, GroupSpec] = Field(
        default_factory=dict, description="host groups that `runner cluster apply` manages"
    )
    description: str | None = None


class ClusterDoc(_Model):
    """`kind: Cluster`."""

    api_version: Literal["runner/v1"] = Field(alias="apiVersion")
    kind: Literal["Cluster"]
    metadata: Metadata
    spec: ClusterSpec


class TaskSpec(_Env, _Container):
    """One node of a job's DAG: an App with values, or a command of its own."""

    app: Name | None = None
    kind: Name | None = None
    command: Command | None = None
    params: dict[Name, Any] = Field(default_factory=dict)
    instances: Int | None = Field(default=None, ge=1, le=100_000)
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")
    workdir: str | None = Field(default=None, description="relative to the manifest's folder")
    timeout: Duration | None = None
    retries: Int | None = Field(default=None, ge=0, le=100)
    retry_on: list[Int] | None = Field(
        default=None, alias="retryOn", description="retry only on these exit codes"
    )
    retry_backoff: Duration | None = Field(
        default=None, alias="retryBackoff", description="first retry delay; doubles each time"
    )
    cluster: Name | None = None
    inputs: dict[Name, str] = Field(default_factory=dict)
    outputs: dict[Name, str] = Field(default_factory=dict)
    logs: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _app_or_command(self) -> TaskSpec:
        if self.app is None and self.command is None and self.kind in (None, "shell"):
            # other kinds may write their command themselves (wdl); they say if one is missing
            raise ValueError("a task needs either 'app: NAME' or 'command: ...'")
        if self.app is not None and self.command is not None:
            raise ValueError("a task takes 'app' or 'command', not both")
        return self


class JobSpec(_Env):
    """A DAG of tasks."""

    cluster: Name | None = None
    tasks: dict[Name, TaskSpec] = Field(min_length=1)
    description: str | None = None


class JobDoc(_Model):
    """`kind: Job`."""

    api_version: Literal["runner/v1"] = Field(alias="apiVersion")
    kind: Literal["Job"]
    metadata: Metadata
    spec: JobSpec


DOCUMENT_KINDS: dict[str, type[_Model]] = {"App": AppDoc, "Cluster": ClusterDoc, "Job": JobDoc}


def document_schema() -> dict[str, Any]:
    """JSON Schema for one manifest document (editors apply it to every `---` document)."""
    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[AppDoc | ClusterDoc | JobDoc, Field(discriminator="kind")]
    )
    schema = adapter.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "runner manifest document (apiVersion runner/v1)"
    return schema

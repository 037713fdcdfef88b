"""`runner cluster`: the clusters manifests describe, shown (hosts, slots, load) and applied
(their host groups created or resized).
"""

from __future__ import annotations

from typing import Annotated

import typer

from runner.cli.options import output_for

__all__ = ["app"]

app = typer.Typer(
    help="The clusters manifests describe: show their hosts and load; create and resize "
    "their host groups.",
    no_args_is_help=True,
)

ClusterPaths = Annotated[list[str], typer.Argument(help="manifests with Cluster documents")]
ClusterName = Annotated[
    str | None, typer.Option("--name", help="the Cluster document (default: every one)")
]


@app.command("status")
def cluster_status(paths: ClusterPaths, name: ClusterName = None) -> None:
    """Hosts, slots and load of each cluster (qhost and qstat -g c; sinfo)."""
    from runner import api

    out = output_for()
    for cluster in api.clusters(paths, name):
        out.show(api.ClusterHeading(cluster.name, cluster.executor))
        out.show(api.cluster_report(cluster))


@app.command("apply")
def cluster_apply(paths: ClusterPaths, name: ClusterName = None) -> None:
    """Create or resize each cluster's `groups` (SGE: host group @NAME, queue NAME.q)."""
    from runner import api

    out = output_for()
    for cluster in api.clusters(paths, name):
        out.show(api.cluster_apply(cluster))

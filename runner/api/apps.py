"""The Apps of some manifests and their revision: the image each runs in, its tag, and the
ID that image has on this host (nothing is pulled to find out).
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.api.planning import validate
from runner.api.results import AppList, AppRevision

__all__ = ["apps"]


def apps(paths: Sequence[str]) -> AppList:
    """Every App of the manifests `paths`, with its revision."""
    from runner.containers import local_image

    found = []
    for name, a in validate(paths, need_job=False).apps.items():
        image = a.spec.image
        tag = image_id = None
        if image is not None:
            ref, at, _ = image.partition("@")  # name[:tag][@sha256:digest]
            last = ref.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else ("(by digest)" if at else "latest")
            image_id = local_image(image, a.spec.runtime)
        found.append(AppRevision(name, a.spec.kind, image, tag, image_id, a.metadata.description))
    return AppList(tuple(found))

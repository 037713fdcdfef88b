"""The dashboard, behind a login: runs, a run's tasks and instances, an attempt's logs;
the Apps of the served manifests with a form to submit each; projects; clusters. A run can be
cancelled, and one that did not succeed retried, from its page.

Every page but the login page needs a session (a signed, HttpOnly, SameSite=Strict cookie;
Secure when served over https); every POST needs the session's CSRF token. Logs are served
only from the state directory's own log folder (paths resolved, symlinks included). Pages are
rendered by Jinja2 with autoescaping: a task name or a log line cannot inject markup.

Everything it knows about runs it reads through `runner.api` (typed values), never from the
state store itself; it asks a cluster's executor about its hosts the same way.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from runner import api
from runner.errors import UserError
from runner.events import took, when
from runner_web.auth import check_password, users
from runner_web.projects import Form, Projects, spawn_apply, submit

__all__ = ["make_app"]

PUBLIC = {"/login", "/favicon.ico", "/static/style.css", "/static/live.js"}  # nothing secret
_LOG_CHUNK = 1 << 20  # a log is read a megabyte at a time; a live tail asks for the rest


def _secret(state_dir: Path) -> str:
    """The key that signs session cookies, kept (mode 0600) so sessions survive restarts."""
    path = state_dir / "web-secret"
    try:
        return path.read_text().strip()
    except OSError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def make_app(state_dir: Path, *, manifests: Path | None = None, https: bool = False) -> Starlette:
    """The dashboard over the state folder `state_dir` and the projects under `manifests`."""
    # resolved once, here: `runner serve manifests` names them relative to where it was
    # started, and a submission's `runner apply` starts in the project's folder instead
    state_dir = state_dir.resolve()
    manifests = manifests.resolve() if manifests is not None else None
    templates = Environment(
        loader=PackageLoader("runner_web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    templates.globals.update(when=when, took=took)

    projects = Projects(manifests)

    def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = templates.get_template(name).render(
            csrf=_csrf(request), user=request.session.get("user"), **values
        )
        return HTMLResponse(html, status_code=status)

    async def login_form(request: Request) -> Response:
        return page(request, "login.html", error=None)

    async def login(request: Request) -> Response:
        form = await request.form()
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        stored = users(state_dir).get(user)
        # the hash takes a while on purpose: not on the event loop, which serves everyone
        if stored is None or not await run_in_threadpool(check_password, password, stored):
            return page(request, "login.html", error="wrong user or password")
        request.session.clear()
        request.session["user"] = user
        request.session["csrf"] = secrets.token_urlsafe(24)  # a new token with the session
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def runs(request: Request) -> Response:
        try:
            found = api.runs(state_dir, 200).runs
            progress = api.instances_done(state_dir, [r.id for r in found])
        except UserError:  # nothing applied here yet
            return page(request, "runs.html", runs=[], progress={})
        return page(request, "runs.html", runs=found, progress=progress)

    def read_run(run_id: int) -> api.RunStatus | None:
        """A run with its tasks and instances; None if there is none."""
        try:
            return api.status(state_dir, run_id, attempts=False)
        except UserError:
            return None

    def one_run(run_id: int | None) -> api.Run | None:
        """A run (the newest when `run_id` is None); None if there is none."""
        try:
            return api.run(state_dir, run_id)
        except UserError:
            return None

    async def run(request: Request) -> Response:
        found = read_run(int(request.path_params["run_id"]))
        if found is None:
            return PlainTextResponse("no such run", status_code=404)
        r, tasks, instances = found.run, found.tasks, found.instances
        q = request.query_params
        only = q.get("state") or None
        try:
            page_no = max(0, int(q.get("page", "0")))
        except ValueError:
            page_no = 0
        by_task: dict[str, list[api.Instance]] = {}
        for i in instances:
            if only is None or i.state == only:
                by_task.setdefault(i.task, []).append(i)
        pages = {}
        for t in tasks:  # a page of instances per task: 10,000 rows help nobody
            rows = by_task.get(t.task, [])
            start = page_no * PAGE if q.get("task") == t.task else 0
            start = min(start, max(0, (len(rows) - 1) // PAGE * PAGE))
            pages[t.task] = {"rows": rows[start : start + PAGE], "start": start,
                             "total": len(rows), "page": start // PAGE}  # fmt: skip
        states = {t.task: t.state for t in tasks}
        return page(request, "run.html", run=r, tasks=tasks, pages=pages,
                    counts=_counts(instances),
                    only=only, per_page=PAGE, progress=_progress(instances),
                    dag=_dag(_edges(projects, r), states),
                    retry=r.state in RETRYABLE)  # fmt: skip

    async def progress(request: Request) -> Response:
        """What the run page polls for: the run's, tasks' and instances' states."""
        try:
            p = api.progress(state_dir, int(request.path_params["run_id"]))
        except UserError:
            p = None
        if p is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        return JSONResponse({
            "state": p.state, "done": p.done, "total": p.total, "tasks": dict(p.tasks),
            "counts": {task: dict(n) for task, n in p.counts.items()},
            "instances": dict(p.instances),
        })  # fmt: skip

    async def logs(request: Request) -> Response:
        run_id = int(request.path_params["run_id"])
        task = request.path_params["task"]
        idx = int(request.path_params["idx"])
        stream = request.query_params.get("stream", "out")
        if stream not in ("out", "err"):
            return PlainTextResponse("stream is out or err", status_code=400)
        try:
            attempts = api.attempts(state_dir, run_id, task, idx)
        except UserError:
            return PlainTextResponse("no such log", status_code=404)
        wanted = request.query_params.get("attempt")
        chosen = [a for a in attempts if wanted is None or str(a.attempt) == wanted]
        if not chosen:
            return PlainTextResponse("no such log", status_code=404)
        recorded = chosen[-1].stdout if stream == "out" else chosen[-1].stderr
        path = _inside(state_dir / "logs", recorded)
        if path is None:
            return PlainTextResponse("no such log", status_code=404)
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            return PlainTextResponse("offset is a number of bytes", status_code=400)
        try:
            with path.open("rb") as f:
                offset = min(offset, os.fstat(f.fileno()).st_size)  # past the end: at the end
                f.seek(offset)
                data = f.read(_LOG_CHUNK)
        except FileNotFoundError:
            data = b""  # a stream the attempt never wrote to
        except OSError:
            return PlainTextResponse("no such log", status_code=404)
        headers = {"X-Log-Next": str(offset + len(data))}  # where a live tail asks next
        if request.query_params.get("download"):
            name = f"{run_id}-{task}-{idx}.{stream}".replace('"', "")
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return PlainTextResponse(data.decode(errors="replace"), headers=headers)

    async def log_page(request: Request) -> Response:
        run_id = int(request.path_params["run_id"])
        task, idx = request.path_params["task"], int(request.path_params["idx"])
        stream = request.query_params.get("stream", "out")
        if stream not in ("out", "err"):
            return PlainTextResponse("stream is out or err", status_code=400)
        return page(request, "log.html", run_id=run_id, task=task, idx=idx, stream=stream)

    async def cancel(request: Request) -> Response:
        run_id = int(request.path_params["run_id"])
        try:
            api.cancel(state_dir, run_id)
        except UserError as e:
            return PlainTextResponse(str(e), status_code=400)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def retry(request: Request) -> Response:
        """Apply the run's manifests again for its job: what did not succeed runs again."""
        run_id = int(request.path_params["run_id"])
        r = one_run(run_id)
        if r is None:
            return PlainTextResponse("no such run", status_code=404)
        now = r.state
        if now not in RETRYABLE:
            return PlainTextResponse(
                f"run {run_id} {now}; only a run that failed, was cancelled or was "
                "interrupted can be retried", status_code=409)  # fmt: skip
        files = list(r.manifest_files)
        if not files or not all(Path(f).is_absolute() for f in files):
            return PlainTextResponse(
                f"run {run_id} was recorded without where its manifests are; retry it with "
                "`runner apply`", status_code=409)  # fmt: skip
        if not all(Path(f).is_file() for f in files):
            return PlainTextResponse(
                f"the manifests of run {run_id} are gone: {', '.join(files)}", status_code=409
            )
        after = latest_run()
        proc, log = spawn_apply(files, r.job, state_dir, Path(files[0]).parent,
                                str(request.session["user"]))  # fmt: skip
        new, said = await _started(r.job, after, proc, log)
        if new is None:
            return PlainTextResponse(said or "the retry did not start", status_code=409)
        return RedirectResponse(f"/runs/{new}", status_code=303)

    def latest_run() -> int:
        """The newest run's id (0 before the first): what `runner apply` starts is newer."""
        newest = one_run(None)
        return newest.id if newest is not None else 0

    async def _started(job: str, after: int, proc: Any, log: Path) -> tuple[int | None, str | None]:
        """The run `runner apply` started for `job` (newer than run `after`), or what it said
        when it ended without starting one."""
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            ended = proc.poll()
            try:
                recent = api.runs(state_dir, 50).runs
            except UserError:  # the first apply has not made the state yet
                recent = ()
            newer = [x.id for x in recent if x.job == job and x.id > after]
            if newer:
                return min(newer), None
            if ended is not None:
                return None, log.read_text(errors="replace").strip()
            await asyncio.sleep(0.1)
        return None, (
            "runner apply did not start a run within 30 s (it may still: see the runs page "
            f"before submitting again); its output is in {log}"
        )

    async def apps(request: Request) -> Response:
        found = await run_in_threadpool(projects.all)
        return page(request, "apps.html", projects=found)

    async def projects_page(request: Request) -> Response:
        found = await run_in_threadpool(projects.all)
        return page(request, "projects.html", projects=found, root=manifests)

    def form_for(project_id: str, app_name: str) -> Form | Response:
        project = projects.get(project_id)
        if project is None:
            return PlainTextResponse("no such project", status_code=404)
        if project.bundle is None:
            said = "\n".join(f"{d.where()}: {d.message}" for d in project.problems)
            return PlainTextResponse(
                f"project {project.id} does not load, so its Apps cannot be submitted:\n{said}",
                status_code=409,
            )
        app = project.bundle.apps.get(app_name)
        if app is None:
            return PlainTextResponse(f"no App {app_name!r} in project {project.id}", 404)
        return Form(project, app)

    async def submit_form(request: Request) -> Response:
        q = request.query_params
        form = await run_in_threadpool(form_for, q.get("project", ""), q.get("app", ""))
        if not isinstance(form, Form):
            return form
        return page(request, "submit.html", form=form)

    async def submit_post(request: Request) -> Response:
        values = {k: str(v) for k, v in (await request.form()).items()}
        form = await run_in_threadpool(form_for, values.get("project", ""), values.get("app", ""))
        if not isinstance(form, Form):
            return form
        form.fill(values)
        job, written, files = await run_in_threadpool(
            submit, form, str(request.session["user"]), state_dir
        )
        if job is None or written is None:
            return page(request, "submit.html", status=422, form=form)
        after = latest_run()
        proc, log = spawn_apply(files, job, state_dir, form.project.path,
                                str(request.session["user"]))  # fmt: skip
        found, said = await _started(job, after, proc, log)
        if found is None:
            if proc.poll() is not None:  # it ended without a run: nothing to keep
                written.unlink(missing_ok=True)
            form.errors.append(said or "runner apply ended without starting a run")
            return page(request, "submit.html", status=422, form=form)
        return RedirectResponse(f"/runs/{found}", status_code=303)

    async def clusters(request: Request) -> Response:
        found = await run_in_threadpool(_clusters, projects, state_dir)
        return page(request, "clusters.html", **found)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("not found", status_code=404)
        text = (Path(__file__).parent / "static" / name).read_text()
        return Response(text, media_type=STATIC[name])

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", runs, methods=["GET"]),
        Route("/runs/{run_id:int}", run, methods=["GET"]),
        Route("/runs/{run_id:int}/progress.json", progress, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
        Route("/runs/{run_id:int}/logs/{task}/{idx:int}", logs, methods=["GET"]),
        Route("/runs/{run_id:int}/log/{task}/{idx:int}", log_page, methods=["GET"]),
        Route("/runs/{run_id:int}/cancel", cancel, methods=["POST"]),
        Route("/runs/{run_id:int}/retry", retry, methods=["POST"]),
        Route("/apps", apps, methods=["GET"]),
        Route("/projects", projects_page, methods=["GET"]),
        Route("/submit", submit_form, methods=["GET"]),
        Route("/submit", submit_post, methods=["POST"]),
        Route("/clusters", clusters, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[
        Middleware(SessionMiddleware, secret_key=_secret(state_dir), session_cookie="runner",
                   same_site="strict", https_only=https, max_age=12 * 3600),
        Middleware(_Guard),
    ])  # fmt: skip
    return app


RETRYABLE = ("failed", "cancelled", "interrupted")
PAGE = 500  # instances listed per task on a run page
STATIC = {"live.js": "text/javascript", "style.css": "text/css"}


def _run_job(projects: Projects, run: api.Run) -> Any:
    """The job of `run` as its manifest files say now (None if they no longer load)."""
    files = [f for f in run.manifest_files if Path(f).is_file()]
    bundle = projects.load(files)[0] if files else None
    return bundle.jobs.get(run.job) if bundle is not None else None


def _edges(projects: Projects, run: api.Run) -> dict[str, list[str]]:
    """task -> the tasks it depends on (empty if the manifests are unreadable)."""
    job = _run_job(projects, run)
    return {name: list(t.depends_on) for name, t in job.tasks.items()} if job else {}


def _clusters(projects: Projects, state_dir: Path) -> dict[str, Any]:
    """Every Cluster document of the served manifests with its executor, slots and what
    runs on it now; the hosts of each cluster whose executor reports them (SGE's, Slurm's),
    as it does."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for project in projects.all():
        # a project that does not load as a whole (the same cluster written for SGE in one
        # file and for Slurm in another, say) is read a file at a time
        sources = [(project.id, project.bundle)] if project.bundle else [
            (str(Path(project.id) / f.name), projects.load([str(f)])[0]) for f in project.files
        ]  # fmt: skip
        for where, bundle in sources:
            for c in bundle.clusters.values() if bundle else ():
                row = rows.setdefault((c.name, c.executor), {
                    "name": c.name, "executor": c.executor, "queue": c.queue,
                    "slots": c.slots or (os.cpu_count() if c.executor == "local" else None),
                    "files": [], "running": 0, "queued": 0, "hosts": None, "cluster": c,
                })  # fmt: skip
                row["files"].append(where)
    try:
        busy = api.busy(state_dir)  # of live runs only: a dead runner's attempts do not run
    except UserError:  # nothing applied here yet
        busy = ()
    unknown = 0
    for b in busy:
        job = _run_job(projects, b.run)
        task = job.tasks.get(b.task) if job else None
        at = rows.get((task.cluster.name, b.executor)) if task else None
        if at is None and task is not None:  # the automatic cluster of a task naming none
            at = rows.setdefault((task.cluster.name, b.executor), {
                "name": task.cluster.name, "executor": b.executor, "queue": None,
                "slots": task.cluster.slots or os.cpu_count(), "files": [], "running": 0,
                "queued": 0, "hosts": None, "cluster": task.cluster,
            })  # fmt: skip
        if at is None:
            unknown += b.running + b.queued
            continue
        at["running"] += b.running
        at["queued"] += b.queued
    seen: set[str] = set()
    for row in rows.values():
        if row["executor"] not in seen:
            seen.add(row["executor"])  # one view of a scheduler's hosts is enough
            try:
                row["hosts"] = api.cluster_status(row["cluster"])  # None: nothing to show
            except Exception as e:  # a scheduler that does not answer is news, not a crash
                row["hosts"] = f"{row['executor']} did not answer: {e}"
    return {"clusters": sorted(rows.values(), key=lambda r: (r["name"], r["executor"])),
            "unknown": unknown}  # fmt: skip


def _dag(edges: dict[str, list[str]], states: dict[str, str]) -> dict[str, Any]:
    """Boxes and arrows for the run page's SVG: a task's column is its longest path from a
    task with no dependencies."""
    if not edges:
        return {}
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        """Its longest path up, found without recursion (a chain of a thousand tasks is
        fine); the manifest loader has refused cycles already."""
        stack = [name]
        while stack:
            top = stack[-1]
            if top in depth:
                stack.pop()
                continue
            ups = [u for u in edges.get(top, []) if u in edges]
            todo = [u for u in ups if u not in depth and u not in stack]
            if todo:
                stack.extend(todo)
                continue
            depth[top] = 1 + max((depth.get(u, 0) for u in ups), default=-1)
            stack.pop()
        return depth[name]

    rows: dict[int, int] = {}
    boxes: dict[str, dict[str, Any]] = {}
    for name in sorted(edges, key=lambda n: (level(n), n)):
        col = level(name)
        row = rows.get(col, 0)
        rows[col] = row + 1
        boxes[name] = {"x": 20 + col * 200, "y": 20 + row * 60, "name": name,
                       "state": states.get(name, "")}  # fmt: skip
    arrows = [
        {"x1": boxes[u]["x"] + 150, "y1": boxes[u]["y"] + 18,
         "x2": boxes[d]["x"], "y2": boxes[d]["y"] + 18}
        for d, ups in edges.items() for u in ups if u in boxes
    ]  # fmt: skip
    width = 40 + (max(depth.values()) + 1) * 200
    height = 40 + max(rows.values()) * 60
    return {"boxes": list(boxes.values()), "arrows": arrows, "width": width, "height": height}


def _csrf(request: Request) -> str:
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(24)
    return str(request.session["csrf"])


def _counts(instances: tuple[api.Instance, ...]) -> dict[str, dict[str, int]]:
    """task -> state -> how many of its instances are in it."""
    counts: dict[str, dict[str, int]] = {}
    for i in instances:
        c = counts.setdefault(i.task, {})
        c[i.state] = c.get(i.state, 0) + 1
    return counts


def _progress(instances: tuple[api.Instance, ...]) -> tuple[int, int]:
    done = sum(1 for i in instances if i.state in ("succeeded", "skipped"))
    return done, len(instances)


def _inside(root: Path, recorded: str | None) -> Path | None:
    """`recorded` resolved (symlinks too), if it lies inside `root`; else None."""
    if not recorded:
        return None
    base = root.resolve()
    path = Path(recorded).resolve()
    return path if path.is_relative_to(base) else None


class _Guard:
    """Sessions for everything but the login page; the CSRF token on every POST; headers
    that keep pages from being framed or running scripts from elsewhere."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["path"] not in PUBLIC and not request.session.get("user"):
            response: Response = RedirectResponse("/login", status_code=303)
            if scope["method"] != "GET":
                response = PlainTextResponse("log in first", status_code=401)
            await response(scope, receive, send)
            return
        if scope["method"] == "POST":
            body = await request.body()
            token = request.headers.get("x-csrf-token")
            if token is None:
                from urllib.parse import parse_qs

                token = (parse_qs(body.decode(errors="replace")).get("csrf") or [""])[0]
            expected = request.session.get("csrf")
            if not expected or not token or not secrets.compare_digest(token, expected):
                await PlainTextResponse("bad or missing CSRF token", status_code=403)(
                    scope, receive, send
                )
                return

            async def replay() -> dict[str, Any]:  # the body, once more, for the endpoint
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)

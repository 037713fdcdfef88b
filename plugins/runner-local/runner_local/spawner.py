"""The local executor's spawner: a small process that starts and reaps attempts for the runner.

Run as `python -I -S spawner.py FD SLOTS`, where FD is one end of a SOCK_SEQPACKET socket
pair whose other end the runner keeps. At most SLOTS attempts run at once; the runner sends a
few more than that ahead of time, and the spawner starts the next one the moment an attempt
exits, without waiting for the runner to notice.

Why a separate process: `posix_spawn` suspends its caller until the child has exec'd, and
in the runner (pydantic and its state loaded) that wait was ~0.45 ms per process on a 2-core
VM against ~0.15 ms in a small process. Here it costs the runner nothing, and a slot is
refilled by the spawner alone: the runner's bookkeeping is off that path.

Messages are `marshal`ed tuples (both ends are the same Python). Runner -> spawner:

    ("spawn", tag, program, argv, env, workdir)   with SCM_RIGHTS [stdout_w, stderr_w]
                                                 (a third fd, a memfd, carries the tuple
                                                 itself when it is too big for one packet)
    ("kill", tag, signal)                         to the attempt's process group, if it runs;
                                                 a queued attempt is dropped and reported as
                                                 exited by that signal
    ("quit",)                                     wait for every child, then exit

Spawner -> runner:

    ("started", tag, pid)                         it got a slot and runs
    ("failed", tag, errno, strerror, filename)    the program could not be started
    ("exited", tag, wait_status)                  the attempt's leader exited; the rest of
                                                 its process group has been killed

`env` holds only what differs from the spawner's own environment (the runner's). When the
runner disappears (EOF without "quit", e.g. after `kill -9`), the spawner exits, drops what
is queued and leaves the running attempts running, as they would be had the runner started
them itself; the next `runner apply` finds them by their environment and kills them.

This file imports only the standard library and must stay that way: it starts with `-S`.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import signal
import socket
import sys
from collections import deque

MAX_PACKET = 1 << 16
# Python ignores these at start-up; a child must get the default back (`yes | head` ends
# by SIGPIPE, not by a write error)
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class Spawner:
    def __init__(self, sock: socket.socket, slots: int) -> None:
        self.sock = sock
        self.slots = slots
        self.queue: deque[tuple] = deque()  # type: ignore[type-arg]  # spawn requests
        self.sock.setblocking(False)
        self.sock.set_inheritable(False)  # an attempt must not hold the runner's line
        self.env = dict(os.environ)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.home = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.pids: dict[int, int] = {}  # tag -> pid, while it runs
        self.tags: dict[int, int] = {}  # pid -> tag
        self.outbox: deque[bytes] = deque()
        self.quitting = False
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.epoll = select.epoll()
        self.epoll.register(self.sock.fileno(), select.EPOLLIN)
        self.epoll.register(self.wake_r, select.EPOLLIN)

    def run(self) -> None:
        while True:
            for fd, events in self.epoll.poll():
                if fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self.reap()
                else:
                    if events & select.EPOLLOUT:
                        self.flush()
                    readable = events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)
                    if readable and not self.receive():
                        return  # the runner is gone
            self.start_queued()
            self.flush()
            if self.quitting and not self.pids:
                return

    def receive(self) -> bool:
        """Handle every request waiting; False when the runner has closed its end."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MAX_PACKET, 3)
            except BlockingIOError:
                return True
            except ConnectionResetError:
                return False
            if not data and not fds:
                return False
            for fd in fds:  # received fds are inheritable: no other attempt may get them
                os.set_inheritable(fd, False)
            try:
                if data == b"@":  # the request is in a memfd
                    with os.fdopen(fds.pop(), "rb") as f:
                        data = f.read()
                self.handle(marshal.loads(data), fds)
            finally:
                for fd in fds:
                    os.close(fd)

    def handle(self, msg: tuple, fds: list[int]) -> None:  # type: ignore[type-arg]
        op = msg[0]
        if op == "spawn":
            self.queue.append((*msg[1:], fds[:2]))
            del fds[:2]  # the queue owns them now
        elif op == "kill":
            _, tag, sig = msg
            pid = self.pids.get(tag)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
                return
            for req in self.queue:
                if req[0] == tag:
                    self.queue.remove(req)
                    self.drop(req)
                    self.send(("exited", tag, sig))  # a wait status: killed by `sig`
                    break
        elif op == "quit":
            self.quitting = True
            while self.queue:
                self.drop(self.queue.popleft())

    @staticmethod
    def drop(req: tuple) -> None:  # type: ignore[type-arg]
        for fd in req[-1]:
            os.close(fd)

    def start_queued(self) -> None:
        while self.queue and len(self.pids) < self.slots:
            tag, program, argv, env, workdir, fds = self.queue.popleft()
            try:
                self.spawn(tag, program, argv, env, workdir, fds)
            finally:
                for fd in fds:
                    os.close(fd)

    def spawn(
        self,
        tag: int,
        program: str,
        argv: list[str],
        env: dict[str, str],
        workdir: str,
        fds: list[int],
    ) -> None:
        out, err = fds
        actions = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, err, 2),
        ]
        try:
            # posix_spawn has no working-directory argument: switch ours around the call
            os.chdir(workdir)
            try:
                pid = os.posix_spawnp(
                    program,
                    argv,
                    # PWD too: programs such as Blender trust it over getcwd()
                    {**self.env, **env, "PWD": workdir},
                    file_actions=actions,
                    setsid=True,
                    setsigdef=DEFAULT_SIGNALS,
                )
            finally:
                os.fchdir(self.home)
        except (OSError, ValueError, IndexError) as e:
            code = getattr(e, "errno", None) or 0
            reason = getattr(e, "strerror", None) or str(e)
            name = getattr(e, "filename", None)
            if not isinstance(name, str) or name == program:
                name = argv[0] if argv else ""
            self.send(("failed", tag, code, reason, name))
            return
        self.pids[tag] = pid
        self.tags[pid] = tag
        self.send(("started", tag, pid))

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            tag = self.tags.pop(pid, None)
            if tag is None:
                continue
            del self.pids[tag]
            # whatever the command left running in its group goes with it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            self.send(("exited", tag, status))

    def send(self, msg: tuple) -> None:  # type: ignore[type-arg]
        """Queue a message; the main loop sends after starting what it can (an exit and the
        start it allowed then reach the runner together)."""
        self.outbox.append(marshal.dumps(msg))

    def flush(self) -> None:
        """Send what is queued; never block (the runner may be busy sending to us)."""
        while self.outbox:
            try:
                self.sock.send(self.outbox[0])
            except BlockingIOError:
                self.epoll.modify(self.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
                return
            except (BrokenPipeError, ConnectionResetError):
                self.outbox.clear()
                return
            self.outbox.popleft()
        self.epoll.modify(self.sock.fileno(), select.EPOLLIN)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    Spawner(sock, max(1, int(sys.argv[2]))).run()


if __name__ == "__main__":
    main()

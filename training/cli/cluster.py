"""Multi-worker start-up: `TF_CONFIG` checked before TensorFlow starts, and a deadline for the other workers.

TensorFlow's `MultiWorkerMirroredStrategy` waits for every worker of `TF_CONFIG` inside one native call that holds
the interpreter and swallows SIGTERM, with no timeout and no message. So the workers meet first here, in plain
Python: each listens on its own address from `TF_CONFIG` and connects to the others' until all have answered (a
worker whose TensorFlow server already runs answers too), or until `--cluster-timeout` seconds have passed, when
the run stops naming the workers that did not answer. SIGTERM and SIGINT end the wait at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import signal
import socket
import sys
import time
from typing import Any, Iterator, Optional

from dnnlib.util import UserError

JOBS = ("chief", "worker")  # the jobs of MultiWorkerMirroredStrategy
_EXAMPLE = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """A checked `TF_CONFIG`.

    Attributes:
        cluster: Job name -> the `host:port` addresses of its tasks.
        task_type: This process's job.
        task_index: This process's index in its job.
    """

    cluster: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        """This process's own `host:port`."""
        return self.cluster[self.task_type][self.task_index]

    def peers(self) -> dict[str, str]:
        """The other tasks: `"worker 1"` -> `host:port`."""
        return {f"{job} {i}": addr for job in JOBS for i, addr in enumerate(self.cluster.get(job, []))
                if (job, i) != (self.task_type, self.task_index)}


def _fail(problem: str) -> UserError:
    return UserError(f"TF_CONFIG: {problem}; set it to e.g. {_EXAMPLE}, or unset it to train in one process")


def _check_address(job: str, index: int, addr: Any) -> None:
    host, _, port = str(addr).rpartition(":") if isinstance(addr, str) else ("", "", "")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _fail(f"cluster.{job}[{index}] is {addr!r}, not a host:port address (port 1-65535)")


def parse_tf_config(text: str) -> ClusterConfig:
    """Checks the text of `TF_CONFIG` for multi-worker training.

    Raises:
        UserError: One line per malformed case: not JSON, not an object, no or a bad `cluster` (jobs other than
            chief/worker, addresses that are not host:port), no or a bad `task` (a type not in the cluster, an
            index beyond its job's list).
    """
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise _fail(f"not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _fail(f"must be a JSON object, not {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _fail("'cluster' is missing or not an object of job -> address list")
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise _fail(f"job {job!r} in 'cluster' is not supported (multi-worker training uses "
                        f"{' and '.join(JOBS)})")
        if not isinstance(addresses, list) or not addresses:
            raise _fail(f"cluster.{job} must be a non-empty list of host:port addresses")
        for i, addr in enumerate(addresses):
            _check_address(job, i, addr)
    if len(cluster.get("chief", [])) > 1:
        raise _fail("cluster.chief may list one address only")
    if not isinstance(task, dict):
        raise _fail("'task' is missing or not an object {\"type\": ..., \"index\": ...}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise _fail(f"task.type {task_type!r} is not a job of 'cluster' ({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise _fail(f"task.index {index!r} is not an index of cluster.{task_type} (0..{len(cluster[task_type]) - 1})")
    return ClusterConfig({job: list(cluster[job]) for job in cluster}, task_type, index)


def read_tf_config(environ: dict[str, str]) -> Optional[ClusterConfig]:
    """The checked `TF_CONFIG` of `environ`, or None when it is unset or empty (training in one process)."""
    text = environ.get("TF_CONFIG", "")
    return parse_tf_config(text) if text.strip() else None


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _answers(addr: str, timeout: float) -> bool:
    """Whether something accepts a TCP connection at `addr` (a peer's rendezvous socket or its TensorFlow server)."""
    try:
        with socket.create_connection(_split(addr), timeout=timeout):
            return True
    except OSError:
        return False


def _listen(config: ClusterConfig) -> socket.socket:
    """A listening socket on this task's port (only the kernel's backlog answers: no connection is accepted)."""
    _, port = _split(config.address)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", port))
    except OSError as exc:
        sock.close()
        reason = "another process uses it" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UserError(f"TF_CONFIG: cannot listen on {config.address}, the address of {config.task_type} "
                        f"{config.task_index} ({reason}); stop that process or give this task a free port") from None
    sock.listen(128)
    return sock


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block, as SIGINT does (the CLIs report "interrupted")."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_for_peers(config: ClusterConfig, timeout: float, poll: float = 0.5) -> None:
    """Waits until every other task of the cluster answers on its address, at most `timeout` seconds.

    Raises:
        UserError: The deadline passed (names the tasks that did not answer and `--cluster-timeout`), or this task's
            port is taken.
        KeyboardInterrupt: SIGINT or SIGTERM arrived.
    """
    waiting = config.peers()
    if not waiting:
        return
    print(f"Waiting up to {timeout:g} s for {len(waiting)} other worker(s) of TF_CONFIG: "
          f"{', '.join(f'{k} ({v})' for k, v in waiting.items())}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    with _sigterm_interrupts(), contextlib.closing(_listen(config)):
        while True:
            waiting = {k: v for k, v in waiting.items() if not _answers(v, min(poll, 1.0))}
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise UserError(f"cluster start-up: no answer within --cluster-timeout {timeout:g} s from "
                                f"{', '.join(f'{k} ({v})' for k, v in waiting.items())}; start every task of "
                                f"TF_CONFIG (or fix its addresses), or pass a longer --cluster-timeout")
            time.sleep(poll)

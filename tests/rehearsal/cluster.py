"""A real two-node Ray cluster on this machine, started from a backend's own environment, stopped by its PIDs.

The head and the worker are separate `ray start --block` processes (each in a
session of its own, so stopping one signals only its process group), with
logical GPUs and the Jobs API on the head. Their PATH starts with the backend
environment's `bin/`, as on a cluster image: a job's `python3` is the
backend's Python, with the backend's Ray.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_ports() -> list[str]:
    """Every other port a node binds, free ones: two nodes on one machine cannot share the defaults (the dashboard
    agent's 52365 above all: a node whose agent cannot bind leaves the Jobs API saying "No available agent")."""
    names = ("dashboard-agent-listen", "dashboard-agent-grpc", "metrics-export", "runtime-env-agent", "node-manager")
    return [f"--{name}-port={free_port()}" for name in names] + [f"--object-manager-port={free_port()}"]


class Cluster:
    def __init__(self, env: Path, log_dir: Path, gpus_per_node: int = 2, cpus_per_node: int = 4) -> None:
        self.env, self.log_dir = Path(env), Path(log_dir)
        self.gpus, self.cpus = gpus_per_node, cpus_per_node
        self.temp = tempfile.mkdtemp(prefix="krh", dir="/tmp")  # Ray's socket paths must stay short
        self.port, self.dashboard = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard}"
        self.nodes: list[subprocess.Popen] = []

    def _start(self, name: str, *args: str) -> None:
        env = {
            **os.environ,
            "PATH": f"{self.env / 'bin'}:{os.environ['PATH']}",
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "VIRTUAL_ENV": str(self.env),
        }
        for leak in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(leak, None)
        log = (self.log_dir / f"ray-{name}.log").open("w")
        cmd = [str(self.env / "bin/ray"), "start", "--block", "--node-ip-address=127.0.0.1", *args, *own_ports()]
        cmd += [f"--num-cpus={self.cpus}", f"--num-gpus={self.gpus}"]
        self.nodes.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self, timeout_s: float = 180) -> Cluster:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._start(
            "head",
            "--head",
            f"--port={self.port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard}",
            "--include-dashboard=true",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={self.temp}",
        )
        self._wait(lambda c: c.submit_job(entrypoint="true") is not None, timeout_s, "the head's job agent")
        self._start("worker", f"--address=127.0.0.1:{self.port}")
        self._wait(lambda c: self.alive_nodes() == 2, timeout_s, "the worker node")
        return self

    def alive_nodes(self) -> int:
        from ray.util.state import list_nodes

        return sum(n.state == "ALIVE" for n in list_nodes(address=self.address))

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if ready(JobSubmissionClient(self.address)):
                    return
            except Exception:
                pass
            if time.monotonic() > deadline or any(n.poll() is not None for n in self.nodes):
                self.stop()
                logs = "".join(p.read_text()[-2000:] for p in sorted(self.log_dir.glob("ray-*.log")))
                raise RuntimeError(f"{what} did not come up:\n{logs}")
            time.sleep(1)

    def stop(self) -> None:
        """SIGTERM then SIGKILL to our own nodes' process groups, worker first; nobody else's Ray is touched."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(self.nodes):
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        self.nodes.clear()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

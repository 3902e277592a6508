"""A two-node Ray cluster on this machine, started from the NeMo-RL rehearsal environment.

Each node is a `ray start --block` process of the environment's own Ray (its
`bin/` first on the PATH, `node.env` from build.sh in its environment, as a
node of NeMo-RL's image would have them), with logical GPUs, its own ports
and the cluster's own temp dir; both are stopped by their process groups,
never by `ray stop`. The head serves the Jobs API.
"""

from __future__ import annotations

import os
import shlex
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


def node_env(node_env_file: Path) -> dict[str, str]:
    """os.environ plus the exports of build.sh's node.env (PATH first: the nodes' python3 is the environment's)."""
    out = subprocess.run(
        ["bash", "-c", f"set -a; . {shlex.quote(str(node_env_file))}; env -0"], capture_output=True, check=True
    ).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    # The dashboard gets 60 s to start and each of its modules 30 s; a loaded 2-core machine needs longer.
    env.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "600")
    env.setdefault("RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT", "600")
    return env


class Cluster:
    """`with Cluster(venv, node_env_file) as c:` -- c.address is the head's dashboard (Jobs API) URL."""

    def __init__(self, venv: Path, node_env_file: Path, gpus_per_node: int = 2, cpus_per_node: int = 8):
        self.ray = str(venv / "bin" / "ray")
        self.env = node_env(node_env_file)
        self.gpus, self.cpus = gpus_per_node, cpus_per_node
        self.temp = tempfile.mkdtemp(prefix="krr", dir="/tmp")  # Ray's socket paths must stay short
        self.procs: list[subprocess.Popen] = []
        self.gcs, self.dashboard = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard}"

    def _node_args(self) -> list[str]:
        return [
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            f"--num-gpus={self.gpus}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--block",
        ]

    def _start(self, args: list[str], log: str) -> None:
        out = open(Path(self.temp) / log, "wb")  # noqa: SIM115  (kept open for the node's life)
        self.procs.append(
            subprocess.Popen(
                [self.ray, "start", *args, *self._node_args()],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def __enter__(self) -> Cluster:
        self._start(
            [
                "--head",
                f"--port={self.gcs}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard}",
                f"--ray-client-server-port={free_port()}",
                "--include-dashboard=true",
                f"--temp-dir={self.temp}",
            ],
            "head.log",
        )
        self._wait(lambda: self._alive_nodes() >= 1, "the head")
        for attempt in range(3):  # a joining raylet gets a fixed 30 s to register: an overloaded GCS can miss it
            self._start([f"--address=127.0.0.1:{self.gcs}"], f"worker-{attempt}.log")
            if self._wait(lambda: self._alive_nodes() >= 2, "the worker node", retry=attempt < 2):
                return self
            self.procs.pop()
        raise AssertionError("unreachable")

    def _alive_nodes(self) -> int:
        from ray.util.state import list_nodes

        return sum(n.state == "ALIVE" for n in list_nodes(address=self.address))

    def _wait(self, ready, what: str, timeout_s: float = 900, retry: bool = False) -> bool:
        """True once ready; False if the last node started exited and `retry`; raises otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if ready():
                    return True
            except Exception:
                pass
            if retry and self.procs[-1].poll() is not None:
                return False
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.__exit__(None, None, None)
                raise RuntimeError(f"{what} of the rehearsal cluster did not come up (logs in {self.temp})")
            time.sleep(1)

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):  # the worker first, then the head; each its own process group
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        self.procs.clear()

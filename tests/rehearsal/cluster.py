"""A real two-node Ray cluster on this machine, started from a backend's own environment, stopped by its PIDs.

The head and the worker are separate `ray start --block` processes (each in a
session of its own, so stopping one signals only its process group), with
logical GPUs and the Jobs API on the head. Their PATH starts with the backend
environment's `bin/`, as on a cluster image: a job's `python3` is the
backend's Python, with the backend's Ray. A backend whose image exports more
(NeMo-RL's `UV_PROJECT_ENVIRONMENT`, `UV_NO_SYNC`) names it in a `node.env`
file its build writes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, also for the backends' rehearsal scripts
from ray_node import free_port, port_flags, stop_node  # noqa: E402


def node_environ(env: Path, node_env: Path | None) -> dict[str, str]:
    """What a node process runs with: this environment, the backend's `bin/` first, and `node_env`'s exports."""
    environ = {**os.environ, "PATH": f"{env / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(env)}
    for leak in ("PYTHONPATH", "PYTHONHOME"):
        environ.pop(leak, None)
    if node_env:
        script = f"set -a; . {shlex.quote(str(node_env))}; env -0"
        out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env=environ).stdout
        environ = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    environ.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    # The dashboard gets 60 s to start and each of its modules 30 s; a loaded 2-core machine needs longer.
    environ.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "600")
    environ.setdefault("RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT", "600")
    return environ


PATIENT_RAY = (
    "import sys, time, types; import ray._private.services as s, ray._private.node as n; "
    "t = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith('__')}); "
    "t.sleep = lambda d: time.sleep(10 * d); t.monotonic = lambda: time.monotonic() / 10; s.time = n.time = t; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
)
"""`ray start` with the start-up waits of `services` and `node` ten times as long.

Ray's `ray start` waits a fixed 20 s for the head's dashboard (the Jobs API;
`services.start_api_server`: 200 polls 0.1 s apart) and 30 s for a raylet to
register (`node.Node`), then gives up; on a 2-core machine under load both
take longer. Only those two modules' clocks are slowed; nothing a backend runs
is touched."""


class Cluster:
    """`with Cluster(env, logs) as c:` -- c.address is the head's dashboard (Jobs API) URL."""

    def __init__(
        self, env: Path, log_dir: Path, gpus_per_node: int = 2, cpus_per_node: int = 4, node_env: Path | None = None
    ) -> None:
        self.env, self.log_dir = Path(env), Path(log_dir)
        self.environ = node_environ(self.env, Path(node_env) if node_env else None)
        self.gpus, self.cpus = gpus_per_node, cpus_per_node
        self.temp = tempfile.mkdtemp(prefix="krh", dir="/tmp")  # Ray's socket paths must stay short
        self.port, self.dashboard = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard}"
        self.nodes: list[subprocess.Popen] = []

    def _start(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"ray-{name}.log").open("w")  # noqa: SIM115  (open for the node's life)
        cmd = [str(self.env / "bin/python"), "-c", PATIENT_RAY, "start", "--block", "--node-ip-address=127.0.0.1"]
        cmd += [*args, *port_flags(head="--head" in args)]
        cmd += [f"--num-cpus={self.cpus}", f"--num-gpus={self.gpus}"]
        self.nodes.append(
            subprocess.Popen(cmd, env=self.environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def start(self, timeout_s: float = 900) -> Cluster:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._start(
            "head",
            "--head",
            f"--port={self.port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard}",
            "--include-dashboard=true",
            f"--temp-dir={self.temp}",
        )
        self._wait(lambda c: c.submit_job(entrypoint="true") is not None, timeout_s, "the head's job agent")
        for attempt in range(3):  # a joining raylet gets a fixed 30 s to register: a loaded GCS can miss it
            self._start(f"worker-{attempt}", f"--address=127.0.0.1:{self.port}")
            if self._wait(lambda c: self.alive_nodes() == 2, timeout_s, "the worker node", retry=attempt < 2):
                return self
            self.nodes.pop()
        raise AssertionError("unreachable")

    def alive_nodes(self) -> int:
        from ray.util.state import list_nodes

        return sum(n.state == "ALIVE" for n in list_nodes(address=self.address))

    def _wait(self, ready, timeout_s: float, what: str, retry: bool = False) -> bool:
        """True once ready; False if the node started last exited and `retry`; raises otherwise."""
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if ready(JobSubmissionClient(self.address)):
                    return True
            except Exception:
                pass
            if retry and self.nodes[-1].poll() is not None:
                return False
            if time.monotonic() > deadline or any(n.poll() is not None for n in self.nodes):
                self.stop()
                logs = "".join(p.read_text()[-2000:] for p in sorted(self.log_dir.glob("ray-*.log")))
                raise RuntimeError(f"{what} did not come up:\n{logs}")
            time.sleep(1)

    def stop(self) -> None:
        """Our own nodes, the worker first (it drains through the head's GCS); nobody else's Ray is touched."""
        for node in reversed(self.nodes):
            stop_node(node)
        self.nodes.clear()
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self if self.nodes else self.start()  # `with started(...)` enters a cluster already up

    def __exit__(self, *exc) -> None:
        self.stop()


def started(env: Path, logs: Path, node_env: Path | None = None, attempts: int = 3, **sizes) -> Cluster:
    """A started cluster, trying again from scratch when a start fails (a loaded machine's Ray can miss a wait).

    Two nodes with 2 logical GPUs and 8 logical CPUs each by default: verl 0.9's resource pool bundles take 3 CPUs
    per GPU (`ResourcePoolManager.max_colocate_count`), so a node's two GPU bundles alone ask for 6."""
    sizes = {"gpus_per_node": 2, "cpus_per_node": 8, **sizes}
    for attempt in range(1, attempts + 1):
        try:
            return Cluster(env, logs / str(attempt), node_env=node_env, **sizes).start()
        except RuntimeError as e:
            if attempt == attempts:
                raise
            print(f"[cluster] start {attempt} failed ({str(e).splitlines()[0]}); again", flush=True)
    raise AssertionError("unreachable")

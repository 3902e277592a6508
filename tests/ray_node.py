"""A Ray node of our own, for the test suite's head and the rehearsal's two-node cluster: its ports and its stop.

Two nodes on one machine fight over Ray's defaults (the dashboard agent's
52365 above all: a node whose agent cannot bind answers "No available agent";
the client server's 10001), so each node gets free ones of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

RAY_NODE_PORTS = (
    "dashboard-agent-listen",
    "dashboard-agent-grpc",
    "metrics-export",
    "runtime-env-agent",
    "node-manager",
    "object-manager",
    "ray-client-server",
)
"""Every port a Ray head binds besides its GCS and dashboard ports (the client server's on the head only)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_flags(head: bool = True) -> list[str]:
    """`ray start` flags giving each of the node's ports a free one."""
    return [f"--{name}-port={free_port()}" for name in RAY_NODE_PORTS if head or name != "ray-client-server"]


def stop_node(node: subprocess.Popen, grace_s: float = 60) -> None:
    """Stop a `ray start --block` started in a session of its own, and whatever its process group still holds.

    SIGTERM goes to `ray start` alone: it drains the node through the GCS and stops its processes in a few
    seconds. Sent to the whole group, it also stopped the GCS under the drain, which then waited out its
    30 s timeout. Nobody else's Ray is touched (never `ray stop`)."""
    if node.poll() is None:
        node.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()

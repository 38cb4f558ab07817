"""Start the ranks of a multi-process test on 127.0.0.1 and always tear them down.

Each rank (or ``torchrun``) is a subprocess in its own session, so a test kills it and everything it started with
one ``killpg``, in a ``finally``, even when the test fails or times out. The rendezvous is on 127.0.0.1 only, at a
port the OS picked free a moment before; gloo is told to use the loopback interface.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("worker.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc; [] elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (torchrun forwards it to its ranks), then SIGKILL whatever is left of the tree."""
    if proc.poll() is None:
        below = _descendants(proc.pid)  # found while proc is alive: torchrun's ranks sit in sessions of their own
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        for pid in below:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything the process left behind in its own group
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def run_processes(commands: list[tuple[list[str], dict[str, str]]], *, timeout: float = 120) -> list[str]:
    """Run ``commands`` (argv, env) at once; return their outputs; raise if one fails or the time runs out.

    As soon as one exits non-zero the others are killed (they would wait for it until gloo's timeout).
    """
    procs, logs = [], []
    try:
        for argv, env in commands:
            log = tempfile.TemporaryFile()
            logs.append(log)
            procs.append(
                subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.05)
        timed_out = any(p.poll() is None for p in procs) and time.monotonic() >= deadline
    finally:
        for p in procs:
            _kill_tree(p)
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read().decode(errors="replace"))
        log.close()
    codes = [p.returncode for p in procs]
    if timed_out or any(c != 0 for c in codes):
        why = f"timed out after {timeout} s" if timed_out else f"exit codes {codes}"
        report = "\n".join(
            f"--- process {i} (exit {c}) ---\n{o[-4000:]}" for i, (c, o) in enumerate(zip(codes, outputs, strict=True))
        )
        raise AssertionError(f"multi-process run failed: {why}\n{report}")
    return outputs


def run_ranks(job: list[dict], out: Path, *, nprocs: int = 2, timeout: float = 120) -> list[str]:
    """Run ``worker.py out job`` as ranks 0 .. nprocs-1 of one gloo process group."""
    import json

    env = child_env(free_port())
    commands = [
        (
            [sys.executable, str(WORKER), str(out), json.dumps(job)],
            {**env, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(nprocs), "LOCAL_WORLD_SIZE": str(nprocs)},
        )
        for r in range(nprocs)
    ]
    return run_processes(commands, timeout=timeout)

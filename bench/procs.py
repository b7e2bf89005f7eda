"""Contenders (c) and (d) of bench/live.py: Faust processes (the naive agent, `dunning worker`), timed from outside.

A Faust process logs "[^---Recovery]: Worker ready" with a millisecond timestamp each time its streams resume
after an assignment and the table recovery that goes with it; it starts fetching input then. The window of a
contender opens at the latest such line of any of its processes (so start-up, joining the group, any later
rebalance and the recoveries are all before it) and closes when the broker reports the group's committed
offsets at the end of every input partition (polled every 0.1 s). The events counted are those the group had
not committed when the window opened. Two workers are held instead (hold_until_joined): the window opens when
both, in one generation, are let go onto input written while they were paused.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Awaitable, Callable

from aiokafka import TopicPartition

from broker import Broker, wait_until, worker_env
from streams.runtime.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DUNNING = Path(sys.executable).with_name("dunning")
NAIVE_AGENT = Path(__file__).with_name("naive_agent.py")
PY_SPY = Path(sys.executable).with_name("py-spy")
STREAMS_RESUMED = b"[^---Recovery]: Worker ready"
RECOVERY_STARTED = b"[^---Recovery]: Restoring state from changelog topics..."
WORKER_READY = b"[^Worker]: Ready"  # once per process, after its first assignment's recovery
_FAUST_TIME = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A Faust process whose log goes to a file; its peak RSS is read just before it is stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.started = time.time()
        self.peak_rss_mb: float | None = None

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode})\n{self.tail()}")

    def logged(self, marker: bytes) -> list[float]:
        """Wall-clock times, from Faust's own timestamps, of the log lines containing `marker`."""
        return [datetime.strptime(found.group(1).decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                for line in self.log_path.read_bytes().splitlines()
                if marker in line and (found := _FAUST_TIME.match(line))]

    async def wait_logged(self, marker: bytes, timeout: float) -> float:
        async def seen():
            self.check_alive()
            return self.logged(marker)

        return (await wait_until(seen, timeout, f"{self.name} to log {marker.decode()!r}"))[-1]

    def memory_mb(self, field: str = "VmRSS") -> float:
        """VmRSS (resident now) or VmHWM (the peak so far) of the running process, in MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        return round(int(next(line for line in status if line.startswith(f"{field}:")).split()[1]) / 1024, 1)

    def spy(self, output: Path) -> subprocess.Popen:
        """py-spy sampling this process into `output` (collapsed stacks) until stop_spy."""
        # it pauses the process for each sample (about 1% here): without, a third of the stacks come torn
        return subprocess.Popen([str(PY_SPY), "record", "--pid", str(self.proc.pid), "--rate", "100",
                                 "--format", "raw", "--output", str(output)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.peak_rss_mb = self.memory_mb("VmHWM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"----- last {len(text)} lines of {self.log_path} -----\n" + "\n".join(text)


def stop_spy(spy: subprocess.Popen) -> None:
    """py-spy writes what it sampled when interrupted (or when its process has gone)."""
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)


def start_worker(settings: Settings, workdir: Path, name: str, **env: str) -> Proc:
    """`dunning worker` (the console script), with its own empty state dir and web port (`proc.web_port`), and
    `env` (DUNNING_* settings) on top."""
    port = free_port()
    proc = Proc(name, [str(DUNNING), "worker"], {**worker_env(settings, workdir / f"{name}-state", port), **env},
                workdir)
    proc.web_port = port
    return proc


def start_naive_agent(settings: Settings, workdir: Path, name: str, empty: bool = False) -> Proc:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers, "BENCH_APP_ID": settings.app_id,
           "BENCH_TOPICS": ",".join(settings.topic.inputs), "BENCH_PARTITIONS": str(settings.partitions),
           "BENCH_STATE_DIR": str(workdir / f"{name}-state"), "BENCH_WEB_PORT": str(free_port()),
           **({"BENCH_EMPTY": "1"} if empty else {})}
    return Proc(name, [sys.executable, str(NAIVE_AGENT), "worker", "-l", "info"], env, workdir)


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def local_broker_pid(bootstrap: str) -> int | None:
    """The pid of the process listening at `bootstrap` when that is on this machine (the local broker)."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    try:
        said = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    except FileNotFoundError:  # no iproute2: the broker's share is left out
        return None
    found = re.search(r"pid=(\d+)", said)
    return int(found.group(1)) if found else None


def cpu_clocks(procs: list[Proc], broker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: each process, the broker (when local), and all cores less idle and iowait."""
    clocks = {proc.name: process_cpu_seconds(proc.proc.pid) for proc in procs}
    if broker_pid:
        clocks["broker"] = process_cpu_seconds(broker_pid)
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    clocks["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return clocks


async def timed(broker: Broker, settings: Settings, partitions: list[TopicPartition], procs: list[Proc],
                timeout: float, profile: Path | None = None, opened_at: float | None = None) -> dict:
    """Times a contender's processes through the input (see the module's docstring), then stops them. With
    `profile`, py-spy samples the first process from its first "Worker ready" on, into that file (collapsed
    stacks, as flamegraph tools and speedscope read them). `opened_at` opens the window at that moment instead
    (the processes were held until then: see `hold_until_joined`)."""
    spy: subprocess.Popen | None = None
    broker_pid = local_broker_pid(settings.bootstrap_servers)
    try:
        start = await broker.committed(settings.app_id, partitions)  # 0s, or where a held group was set to begin
        ends = await broker.end_offsets(partitions)
        samples: list[tuple[float, int, dict[str, float]]] = []  # (time, committed messages, cpu_clocks)
        if opened_at:  # held until then: nothing more was committed
            samples.append((opened_at, sum(start.values()), cpu_clocks(procs, broker_pid)))

        async def caught_up() -> bool:
            nonlocal spy
            for proc in procs:
                proc.check_alive()
            if profile and spy is None and procs[0].logged(STREAMS_RESUMED):
                spy = procs[0].spy(profile)
            committed = await broker.committed(settings.app_id, partitions)
            samples.append((time.time(), sum(committed.values()), cpu_clocks(procs, broker_pid)))
            # a process still starting when the others have caught up has not opened the window yet
            return all(committed[tp] >= ends[tp] for tp in partitions) and \
                all(proc.logged(STREAMS_RESUMED) for proc in procs)

        await wait_until(caught_up, timeout, f"{settings.app_id} to commit every input message")
        closed, _, cpu_closed = samples[-1]
        opened = opened_at or max(proc.logged(STREAMS_RESUMED)[-1] for proc in procs)
        at, committed, cpu_opened = [s for s in samples if s[0] <= opened][-1]
    finally:
        for proc in procs:
            proc.stop()
        if spy:
            spy.wait(timeout=60)  # it writes the profile when the process it samples has gone
    total, seconds = sum(ends.values()) - sum(start.values()), closed - opened
    committed -= sum(start.values())
    return {
        "messages": total, "counted": total - committed, "seconds": round(seconds, 3),
        "events_per_s": round((total - committed) / seconds),
        "startup_excluded_s": round(opened - min(proc.started for proc in procs), 3),
        "assignments": sum(len(proc.logged(STREAMS_RESUMED)) for proc in procs),
        # cores each kept busy in the window, on average: a 2-core machine is saturated at 2
        "cpu_cores": {name: round((cpu_closed[name] - cpu_opened[name]) / (closed - at), 2) for name in cpu_closed},
        "peak_rss_mb": [proc.peak_rss_mb for proc in procs],
    }


_JOINED = re.compile(rb"Joined group .* \(generation (\d+)\)")


def settled(procs: list[Proc]) -> bool:
    """Whether every process joined the same (latest) generation of the group and resumed its streams after it."""
    generations = set()
    for proc in procs:
        lines = proc.log_path.read_bytes().splitlines()
        joined = [n for n, line in enumerate(lines) if _JOINED.search(line)]
        if not joined or not any(STREAMS_RESUMED in line for line in lines[joined[-1]:]):
            return False
        generations.add(_JOINED.search(lines[joined[-1]]).group(1))
    return len(generations) == 1


async def hold_until_joined(settings: Settings, procs: list[Proc], fill: Callable[[], Awaitable[object]],
                            timeout: float) -> float:
    """Lets processes started together on input their group is set to skip (its committed offsets at the end,
    Broker.commit_empty_group) join one generation and settle, pauses them (SIGSTOP), has `fill` write the input
    they are to read, and lets them go (SIGCONT); returns that moment. Unheld, the first to join could do a
    small input alone: the group's next rebalance waits for its next heartbeat (3 s)."""
    async def ready() -> bool:
        for proc in procs:
            proc.check_alive()
        return settled(procs)

    await wait_until(ready, timeout, f"{settings.app_id}'s processes to join one generation")
    for proc in procs:
        proc.proc.send_signal(signal.SIGSTOP)
    try:
        await fill()
    finally:
        for proc in procs:
            proc.proc.send_signal(signal.SIGCONT)
    return time.time()

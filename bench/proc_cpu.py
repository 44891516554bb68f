"""CPU seconds of groups of processes over a window, from Linux's /proc: a group's processes may come
and go (a pool that opens a connection, a worker host started late), so the groups are found again
at every sample."""

import os
import threading
import time
from collections.abc import Callable, Iterable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_times(pid: int) -> tuple[float, float] | None:
    """(user + system CPU seconds, start time in seconds after boot) of a process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    except OSError:
        return None
    # Fields 14, 15 and 22 of proc(5): utime, stime, starttime; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[19]) / CLOCK_TICKS


def since_boot() -> float:
    """Seconds since boot, on the clock of a process's start time."""
    with open("/proc/uptime", encoding="ascii") as handle:
        return float(handle.read().split()[0])


def machine_times() -> tuple[float, float]:
    """(busy, all) CPU seconds of every core since boot, from /proc/stat (idle and iowait are not busy)."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]  # user .. steal; guest is in user
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


class GroupCPU(threading.Thread):
    """CPU seconds each group of processes spends from start() to stop(), the groups found every interval.

    find() returns {group: pids} (it may also count what it saw, through `notes`). A process seen
    first after the window opened counts from its own start if it started inside the window, else
    from when it was first seen; one that ends counts to its last sample, so up to `interval` of a
    process that ends early is lost.
    """

    def __init__(self, find: Callable[[], dict[str, Iterable[int]]], interval: float = 0.5):
        super().__init__(daemon=True)
        self.find, self.interval = find, interval
        self.first: dict[str, dict[int, float]] = {}
        self.last: dict[str, dict[int, float]] = {}
        self.samples = 0
        self.halt = threading.Event()

    def start(self) -> None:
        """Open the window: the machine's counters, then sample until stopped."""
        self.opened, self.opened_at = since_boot(), time.monotonic()
        self.machine_before = machine_times()
        self.sample()
        super().start()

    def run(self) -> None:
        """Sample every interval until stopped."""
        while not self.halt.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read every process of every group once."""
        for group, pids in self.find().items():
            first, last = self.first.setdefault(group, {}), self.last.setdefault(group, {})
            for pid in pids:
                times = process_times(pid)
                if times is None:
                    continue
                cpu, started = times
                if pid not in first:
                    first[pid] = 0.0 if started >= self.opened else cpu
                last[pid] = cpu
        self.samples += 1

    def stop(self) -> dict:
        """Close the window: {seconds, machine busy seconds and cores, cpu seconds and processes by group}."""
        self.halt.set()
        self.join(timeout=30)
        self.sample()
        seconds = time.monotonic() - self.opened_at
        busy, total = (after - before for after, before in zip(machine_times(), self.machine_before,
                                                                strict=True))
        cores = os.cpu_count() or 1
        return {"seconds": seconds, "machine_busy_s": busy, "machine_cores_busy": cores * busy / total,
                "cpu_s": {group: sum(self.last[group][pid] - self.first[group][pid] for pid in pids)
                          for group, pids in self.first.items()},
                "processes": {group: len(pids) for group, pids in self.first.items()},
                "samples": self.samples}

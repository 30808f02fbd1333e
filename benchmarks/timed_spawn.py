"""Timing one command in its own process: its wall time and its own peak RSS.

The command is spawned by a bare interpreter (``-S``: no site) that waits for it with ``wait4``
and prints, as the last line of its stderr, ``wall_ns=… peak_kb=…``. A child forked from the
benchmark itself would report the benchmark's peak RSS instead.
"""

from __future__ import annotations

import sys

_EXEC = (
    "import os,sys,time\n"
    "t=time.perf_counter_ns()\n"
    "pid=os.posix_spawn(sys.argv[1],sys.argv[1:],os.environ)\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "t=time.perf_counter_ns()-t\n"
    "sys.stderr.write('\\nwall_ns=%d peak_kb=%d\\n'%(t,ru.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(st))\n"
)


def timed_argv(argv: list[str]) -> list[str]:
    """What to run instead of ``argv`` (an executable path first) to have it timed."""
    return [sys.executable, "-S", "-c", _EXEC, *argv]


def read_timing(stderr: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) from the stderr of a :func:`timed_argv` run."""
    fields = dict(f.split("=") for f in stderr.rstrip().rsplit("\n", 1)[-1].split())
    return int(fields["wall_ns"]) / 1e9, int(fields["peak_kb"]) / 1024

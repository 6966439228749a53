"""`forewarn run` across workers, processes and hosts, as `python -m bytewax.run` runs a flow, and its
recovery directory.

The options are Bytewax's own, and so is the machinery under them: every process calls Bytewax's
`cli_main` with its `-w`, `-i` and the cluster's addresses, exactly as `bytewax.run` does; `-p N`
starts N such processes on this machine with their ids and loopback addresses, as
`python -m bytewax.testing -p N` does (which only `bytewax.testing` offers in Bytewax 0.21), and
supervises them: one failing stops the others, and none outlives the launcher.

Recovery (`recovery.directory`) is made here when missing, with Bytewax's own `init_db_dir` (what
`python -m bytewax.recovery DIR N` runs): N is `recovery.partitions`, or the cluster's worker count.
What Bytewax requires of a directory (its docs and 0.21.1's behaviour, reproduced in tests):

- the count of partitions is written into every partition file when it is made, and never changes;
- the cluster as a whole must hold every partition `part-0 … part-(N-1)` (a worker may hold none, and
  a partition held by several workers is used by one); one missing fails the start (one process:
  `MissingPartitionsError`; several: an opaque panic of the communication thread);
- the next run may have any number of workers ("resuming is rescaling"): snapshots of a state key go
  to partition hash(key) mod N, whichever worker handles the key.

So N is the most workers the flow can spread its snapshot writes over. Forewarn refuses a directory
with fewer partitions than the cluster has workers (the design's rule: N ≥ the most workers you will
ever run) and accepts more (scaling down). With one process per host (`-i/-a`) and a directory on
each host, a process that finds its directory missing or empty makes its own share of the partitions
(`k % processes == process id`), so the cluster holds each partition exactly once, whether the hosts
share one directory or each has its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from forewarn.settings import ConfigError, RecoverySettings

if TYPE_CHECKING:
    from bytewax.recovery import RecoveryConfig

log = logging.getLogger(__name__)

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>[0-9]{1,5})")
_PARTITION = re.compile(r"part-(?P<index>[0-9]+)\.sqlite3")


@dataclass(frozen=True)
class Cluster:
    """Where this process stands in the flow's cluster.

    >>> Cluster(workers_per_process=2, processes=3, process_id=1, addresses=("a:1", "b:1", "c:1")).workers
    6
    >>> Cluster(workers_per_process=2, processes=3).spawns  # -p 3: this process starts the three
    True
    """

    workers_per_process: int = 1
    processes: int = 1
    """Processes in the whole cluster."""
    process_id: int | None = None
    """This process's line in `addresses`; None for a lone process and for the `-p` launcher."""
    addresses: tuple[str, ...] = ()

    @property
    def workers(self) -> int:
        """Workers in the whole cluster."""
        return self.workers_per_process * self.processes

    @property
    def spawns(self) -> bool:
        """This process launches the cluster's processes on this machine (`-p N`, N > 1)."""
        return self.process_id is None and self.processes > 1

    def describe(self) -> str:
        """
        >>> Cluster(workers_per_process=2, processes=3).describe()
        '6 workers (3 processes × 2 workers)'
        """
        if self.processes == 1:
            return f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        return f"{self.workers} workers ({self.processes} processes × {self.workers_per_process} " \
               f"worker{'s' if self.workers_per_process > 1 else ''})"


def plan_cluster(workers_per_process: int = 1, processes: int | None = None, process_id: int | None = None,
                 addresses: str | None = None) -> Cluster:
    """Check how `-w`, `-p`, `-i` and `-a` combine; ConfigError says what to change.

    >>> plan_cluster(2, 3)
    Cluster(workers_per_process=2, processes=3, process_id=None, addresses=())
    >>> plan_cluster(1, process_id=1, addresses="10.0.0.1:2101;10.0.0.2:2101").process_id
    1
    >>> plan_cluster(1, process_id=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    forewarn.settings.ConfigError: -i/--process-id needs -a/--addresses: a file of host:port lines, ...
    """
    if workers_per_process < 1:
        raise ConfigError(f"-w/--workers-per-process must be at least 1 (got {workers_per_process})")
    if processes is not None and processes < 1:
        raise ConfigError(f"-p/--processes must be at least 1 (got {processes})")
    if processes is not None and (process_id is not None or addresses is not None):
        raise ConfigError("-p/--processes starts every process of the cluster on this machine, while -i/-a run "
                          "one process of a cluster spread over hosts: give -p alone, or -i and -a on each host")
    if process_id is not None and addresses is None:
        raise ConfigError("-i/--process-id needs -a/--addresses: a file of host:port lines, one per process "
                          "(line 0 is process 0)")
    if addresses is not None and process_id is None:
        raise ConfigError("-a/--addresses needs -i/--process-id: which line of the addresses is this process "
                          "(0 for the first)")
    if addresses is None or process_id is None:
        return Cluster(workers_per_process, processes or 1)
    hosts = read_addresses(addresses)
    if not 0 <= process_id < len(hosts):
        raise ConfigError(f"-i/--process-id {process_id} is not a process of -a/--addresses: it lists "
                          f"{len(hosts)} process{'es' if len(hosts) > 1 else ''}, ids 0 to {len(hosts) - 1}")
    return Cluster(workers_per_process, len(hosts), process_id, hosts)


def read_addresses(value: str) -> tuple[str, ...]:
    """The cluster's host:port addresses, one per process in process-id order: from a file of lines (blank
    lines and # comments skipped; what bytewax.run reads from BYTEWAX_HOSTFILE_PATH), or written out
    as bytewax.run's own -a takes them, "host:port;host:port".

    >>> read_addresses("10.0.0.1:2101;10.0.0.2:2101")
    ('10.0.0.1:2101', '10.0.0.2:2101')
    """
    path = Path(value)
    if path.is_file():
        where = str(path)
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"-a/--addresses: cannot read {path}: {exc}") from None
        entries = [(f"{where} line {n}", line.split("#", 1)[0].strip()) for n, line in enumerate(lines, 1)]
        entries = [(at, text) for at, text in entries if text]
    elif ":" in value and not path.exists():
        entries = [(f"entry {n} of -a/--addresses", text.strip()) for n, text in enumerate(value.split(";"), 1)]
    else:
        raise ConfigError(f"-a/--addresses: {value} is not a file: give a file of host:port lines, one per "
                          "process (line 0 is process 0), or host:port;host:port as bytewax.run takes them")
    if not entries:
        raise ConfigError(f"-a/--addresses: {value} lists no host:port: give one line per process")
    seen: dict[str, str] = {}
    for at, text in entries:
        match = _HOST_PORT.fullmatch(text)
        if match is None or not 1 <= int(match["port"]) <= 65535:
            raise ConfigError(f"-a/--addresses: {at}: {text!r} is not host:port (e.g. 10.0.0.1:2101)")
        if text in seen:
            raise ConfigError(f"-a/--addresses: {text} is listed twice ({seen[text]} and {at}): each process "
                              "needs its own host:port")
        seen[text] = at
    return tuple(text for _, text in entries)


# --- recovery -------------------------------------------------------------------------------


def recovery_partitions(directory: Path) -> dict[int, int]:
    """The recovery partitions in `directory`: partition index → the partition count it was made with."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.iterdir():
        match = _PARTITION.fullmatch(path.name)
        if match is None:
            continue
        index = int(match["index"])
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                rows = db.execute("SELECT part_index, part_count FROM parts").fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"recovery.directory: {path} is not a Bytewax recovery partition ({exc}): move it "
                              "away, or point recovery.directory at another directory") from None
        if len(rows) != 1 or rows[0][0] != index:
            raise ConfigError(f"recovery.directory: {path} does not hold partition {index} (it says {rows}): "
                              "partition files cannot be renamed; restore the original files")
        found[index] = int(rows[0][1])
    return found


def _used(directory: Path, indexes: Sequence[int]) -> bool:
    """Whether a flow ever ran on these partitions (each gets a commit at its first snapshot)."""
    for index in indexes:
        path = directory / f"part-{index}.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            if any(db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() for table in ("commits", "exs", "snaps")):
                return True
    return False


def share(process_id: int, processes: int, count: int) -> list[int]:
    """The partitions a process makes when each host has its own directory.

    >>> share(1, 2, 4)
    [1, 3]
    """
    return [k for k in range(count) if k % processes == process_id]


def prepare_recovery(recovery: RecoverySettings, cluster: Cluster) -> None:
    """Make the recovery directory when it is missing or empty; refuse one this cluster cannot resume from."""
    directory = recovery.directory
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"recovery.directory: {directory} is a file, not a directory")
    wanted = max(recovery.partitions or 0, cluster.workers)
    found = recovery_partitions(directory)
    local = cluster.process_id is None  # this machine runs the whole cluster: the directory holds everything
    if not found:
        made = list(range(wanted)) if local else share(cluster.process_id or 0, cluster.processes, wanted)
        _make_partitions(directory, wanted, made)
        log.warning("initialised recovery directory %s with %d of %d partitions", directory, len(made), wanted)
        return
    counts = sorted(set(found.values()))
    if len(counts) > 1:
        raise ConfigError(f"recovery.directory {directory} mixes partitions of {len(counts)} recovery stores "
                          f"(made with {' and '.join(map(str, counts))} partitions): keep the files of one")
    count = counts[0]
    if count < cluster.workers:
        raise ConfigError(
            f"recovery.directory {directory} holds a recovery store of {count} partition{'s' if count > 1 else ''}, "
            f"made for at most {count} worker{'s' if count > 1 else ''}, and this cluster runs "
            f"{cluster.describe()}. Bytewax fixes the number of partitions when the directory is initialised. "
            f"Run at most {count} workers in all, or point recovery.directory at a new directory (forewarn run "
            f"initialises it for {wanted} workers; set recovery.partitions to allow more): the flow then starts "
            "again from the beginning of its topics, and the ledger keeps anyone from being messaged twice")
    strays = sorted(k for k in found if k >= count)
    if strays:
        raise ConfigError(f"recovery.directory {directory}: partitions {strays} do not belong to a store of "
                          f"{count} partitions: restore the original files")
    if local:
        missing = sorted(set(range(count)) - set(found))
        if missing:
            raise ConfigError(
                f"recovery.directory {directory} lacks partition{'s' if len(missing) > 1 else ''} "
                f"{', '.join(f'part-{k}.sqlite3' for k in missing)} of its {count}: Bytewax resumes only from the "
                "complete set. Restore them (with their -wal and -shm files) from where they were moved or backed "
                "up, or point recovery.directory at a new directory to start again from the beginning of the topics")
        return
    assert cluster.process_id is not None
    mine = share(cluster.process_id, cluster.processes, count)
    if count == wanted and not set(mine) & set(found) and not _used(directory, sorted(found)):
        # One directory shared by the hosts, whose other processes just made their shares.
        _make_partitions(directory, count, mine)
        log.warning("initialised partitions %s of %d in the shared recovery directory %s", mine, count, directory)


def _make_partitions(directory: Path, count: int, indexes: Sequence[int]) -> None:
    """Bytewax's `init_db_dir(directory, count)`, keeping only `indexes`: made aside, moved in one by one
    (a rename), so another process never sees half a partition."""
    from bytewax.recovery import init_db_dir

    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / f".forewarn-init-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        init_db_dir(scratch, count)
        for index in indexes:
            target = directory / f"part-{index}.sqlite3"
            if not target.exists():
                (scratch / target.name).rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def recovery_config(recovery: RecoverySettings | None) -> tuple[RecoveryConfig | None, Any]:
    """Bytewax's recovery config and epoch interval for these settings (None, None: recovery is off)."""
    if recovery is None:
        return None, None
    from bytewax.recovery import RecoveryConfig

    return RecoveryConfig(str(recovery.directory), recovery.backup_interval), recovery.snapshot_interval


def explain_recovery_failure(exc: BaseException, recovery: RecoverySettings | None) -> str | None:
    """A sentence for Bytewax's refusals to resume, or None for anything else."""
    from bytewax.recovery import InconsistentPartitionsError, MissingPartitionsError, NoPartitionsError

    if recovery is None:
        return None
    where = f"recovery.directory {recovery.directory}"
    if isinstance(exc, NoPartitionsError):
        return f"{where}: no worker of the cluster found a recovery partition ({exc})"
    if isinstance(exc, MissingPartitionsError):
        return (f"{where}: the cluster lacks recovery partitions ({exc}): every partition must be in the "
                "recovery directory of some process; restore the missing part-N.sqlite3 files")
    if isinstance(exc, InconsistentPartitionsError):
        return (f"{where}: the recovery partitions hold no common snapshot ({exc}): restore a consistent set "
                "of backups, or raise recovery.backup_interval to keep snapshots longer")
    return None


# --- -p: the processes of one machine --------------------------------------------------------


def local_addresses(count: int) -> tuple[str, ...]:
    """`count` loopback addresses on ports free right now, for a cluster on this machine."""
    ports: list[int] = []
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(int(sock.getsockname()[1]))
    finally:
        for sock in sockets:
            sock.close()
    return tuple(f"127.0.0.1:{port}" for port in ports)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL when the launcher dies, however it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def forewarn_command() -> list[str]:
    """`forewarn` with this interpreter (no console script on PATH needed)."""
    return [sys.executable, "-c", "from forewarn.cli.app import app; app(prog_name='forewarn')"]


def process_commands(config: Path, cluster: Cluster, verbose: bool) -> list[list[str]]:
    """The `forewarn run` command line of each process of a `-p` cluster."""
    addresses = ";".join(cluster.addresses or local_addresses(cluster.processes))
    return [[*forewarn_command(), *(["-v"] if verbose else []), "run", "-c", str(config),
             "-w", str(cluster.workers_per_process), "-i", str(n), "-a", addresses]
            for n in range(cluster.processes)]


def supervise(commands: Sequence[Sequence[str]], grace: float = 10.0) -> int:
    """Run one process per command until all end; the first to fail stops the others and gives the exit code.

    SIGINT and SIGTERM to the launcher are passed on to the processes (each in its own session, so a
    terminal's Ctrl-C reaches them once); if the launcher dies, so do they."""
    procs: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for command in commands:
            procs.append(subprocess.Popen(list(command), start_new_session=True, preexec_fn=_die_with_parent))
        while True:
            codes = [proc.poll() for proc in procs]
            failed = next((c for c in codes if c not in (None, 0)), None)
            if failed is not None:
                # the others are most likely failing the same start-up check: let them say so before they stop
                _settle(procs, REPORT_WINDOW)
                _stop(procs, grace)
                return failed if failed > 0 else 128 - failed  # -N: ended by signal N, as a shell says it
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.1)
    finally:
        _stop(procs, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


REPORT_WINDOW = 3.0
"""How long, after the first process fails, the others may end by themselves (and print why) before they are
stopped."""


def _settle(procs: Sequence[subprocess.Popen[bytes]], window: float) -> None:
    deadline = time.monotonic() + window
    while time.monotonic() < deadline and any(proc.poll() is None for proc in procs):
        time.sleep(0.05)


def _stop(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

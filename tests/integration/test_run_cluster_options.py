"""Issue 10: `forewarn run`'s cluster options (`-w`, `-p`, `-i/-a`, as Bytewax's runner takes them) are
checked at start with a sentence saying what to change, `-p` supervises its processes, and the
recovery directory is initialised when missing and refused when the cluster cannot resume from it."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from bytewax.recovery import init_db_dir
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.flows import cluster
from forewarn.flows.cluster import (
    Cluster,
    plan_cluster,
    prepare_recovery,
    process_commands,
    read_addresses,
    recovery_partitions,
    supervise,
)
from forewarn.settings import ConfigError, RecoverySettings
from tests.integration.helpers import start_run, topic_names, write_run_config
from tests.servers.kafka_broker import create_topics
from tests.servers.ports import free_port
from tests.servers.smtp_server import SmtpServer
from tests.servers.twilio_standin import TwilioStandin


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


# --- the options, checked before anything is loaded or started -----------------------------


@pytest.fixture
def addresses(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.txt"
    path.write_text("# one line per process, the same file on every host\n10.0.0.1:2101\n\n10.0.0.2:2101\n")
    return path


USAGE = [
    ("-i without -a", ["-i", "0"], "-i/--process-id needs -a/--addresses"),
    ("-a without -i", ["-a", "HOSTS"], "-a/--addresses needs -i/--process-id"),
    ("-p with -i/-a", ["-p", "2", "-i", "0", "-a", "HOSTS"], "give -p alone, or -i and -a on each host"),
    ("-i beyond the addresses", ["-i", "2", "-a", "HOSTS"], "-i/--process-id 2 is not a process of -a/--addresses: "
                                                            "it lists 2 processes, ids 0 to 1"),
    ("-a not a file", ["-i", "0", "-a", "no/such/hosts.txt"], "no/such/hosts.txt is not a file"),
    ("a line that is no host:port", ["-i", "0", "-a", "BAD"], "line 2: 'db-1' is not host:port"),
    ("a host twice", ["-i", "0", "-a", "TWICE"], "10.0.0.1:2101 is listed twice"),
    ("an empty file", ["-i", "0", "-a", "EMPTY"], "lists no host:port"),
]


@pytest.mark.parametrize(("what", "args", "named"), USAGE, ids=[u[0] for u in USAGE])
def test_run_refuses_cluster_options_that_do_not_combine(what: str, args: list[str], named: str, addresses: Path,
                                                          tmp_path: Path) -> None:
    files = {"HOSTS": addresses, "BAD": tmp_path / "bad.txt", "TWICE": tmp_path / "twice.txt",
             "EMPTY": tmp_path / "empty.txt"}
    files["BAD"].write_text("10.0.0.1:2101\ndb-1\n")
    files["TWICE"].write_text("10.0.0.1:2101\n10.0.0.1:2101\n")
    files["EMPTY"].write_text("# nobody\n")
    argv = [str(files[a]) if a in files else a for a in args]
    # The config is never read: the options are checked first.
    result = CliRunner().invoke(app, ["run", "-c", str(tmp_path / "absent.yaml"), *argv])
    assert isinstance(result.exception, SystemExit), f"{what}: {result.exception!r}"
    assert result.exit_code == 2, result.output
    assert named in _flat(result.output), _flat(result.output)


def test_workers_processes_and_addresses_make_the_cluster(addresses: Path) -> None:
    assert plan_cluster() == Cluster(1, 1)
    assert plan_cluster(4) == Cluster(4, 1)
    assert plan_cluster(2, 3) == Cluster(2, 3) and plan_cluster(2, 3).spawns and plan_cluster(2, 3).workers == 6
    host = plan_cluster(2, None, 1, str(addresses))
    assert host == Cluster(2, 2, 1, ("10.0.0.1:2101", "10.0.0.2:2101")) and not host.spawns and host.workers == 4
    assert read_addresses("a:1;b:2") == ("a:1", "b:2"), "bytewax.run's own -a form"
    assert read_addresses("[::1]:2101;h-2.example.com:2101") == ("[::1]:2101", "h-2.example.com:2101")
    with pytest.raises(ConfigError, match="at least 1"):
        plan_cluster(0)


def test_minus_p_starts_each_process_with_its_id_and_the_same_addresses(tmp_path: Path) -> None:
    commands = process_commands(tmp_path / "c.yaml", Cluster(3, 2), verbose=False)
    assert len(commands) == 2
    ids = [c[c.index("-i") + 1] for c in commands]
    addresses = {c[c.index("-a") + 1] for c in commands}
    assert ids == ["0", "1"] and len(addresses) == 1
    assert all(c[c.index("-w") + 1] == "3" for c in commands)
    hosts = next(iter(addresses)).split(";")
    assert len(hosts) == 2 and len(set(hosts)) == 2 and all(h.startswith("127.0.0.1:") for h in hosts)


# --- the -p launcher --------------------------------------------------------------------------


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_launcher_stops_the_other_processes_when_one_fails_and_passes_its_exit_code_on(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    code = supervise([_python(f"import time; time.sleep(30); open({str(marker)!r}, 'w')"),
                      _python("import sys, time; time.sleep(0.5); sys.exit(3)")], grace=5)
    assert code == 3
    assert not marker.exists(), "the sleeping process was stopped, not waited for"
    assert supervise([_python("pass"), _python("pass")]) == 0


def test_no_process_outlives_a_killed_launcher(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    child = f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(60)"
    launcher = _python("import sys; from forewarn.flows.cluster import supervise; "
                       f"sys.exit(supervise([{_python(child)!r}, {_python(child)!r}]))")
    import subprocess

    proc = subprocess.Popen(launcher)
    deadline = time.monotonic() + 20
    while not pids.exists() or len(pids.read_text().split()) < 2:
        assert time.monotonic() < deadline, "the launcher did not start its processes"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    children = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, f"processes {children} outlived their launcher"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


# --- the recovery directory -------------------------------------------------------------------


def _recovery(directory: Path, partitions: int | None = None) -> RecoverySettings:
    return RecoverySettings(directory=directory, partitions=partitions)


def test_a_missing_directory_is_initialised_with_a_partition_per_worker_of_the_cluster(tmp_path: Path) -> None:
    prepare_recovery(_recovery(tmp_path / "one"), Cluster(1, 1))
    assert recovery_partitions(tmp_path / "one") == {0: 1}
    prepare_recovery(_recovery(tmp_path / "p"), Cluster(2, 3))  # -p 3 -w 2: made once, for the six workers
    assert recovery_partitions(tmp_path / "p") == {k: 6 for k in range(6)}
    prepare_recovery(_recovery(tmp_path / "spare", partitions=8), Cluster(1, 2))
    assert recovery_partitions(tmp_path / "spare") == {k: 8 for k in range(8)}, "recovery.partitions leaves room"
    (tmp_path / "empty").mkdir()  # an empty directory (a fresh volume) counts as missing
    prepare_recovery(_recovery(tmp_path / "empty"), Cluster(1, 1))
    assert recovery_partitions(tmp_path / "empty") == {0: 1}
    assert not [p for p in (tmp_path / "empty").iterdir() if p.is_dir()], "no scratch left behind"
    prepare_recovery(_recovery(tmp_path / "one"), Cluster(1, 1))  # initialised once: the second start keeps it
    assert recovery_partitions(tmp_path / "one") == {0: 1}


def test_one_process_per_host_makes_its_own_share_whether_the_hosts_share_the_directory_or_not(tmp_path: Path) -> None:
    hosts = ("10.0.0.1:2101", "10.0.0.2:2101")
    for n in (0, 1):
        prepare_recovery(_recovery(tmp_path / f"host{n}"), Cluster(2, 2, n, hosts))
    assert recovery_partitions(tmp_path / "host0") == {0: 4, 2: 4}
    assert recovery_partitions(tmp_path / "host1") == {1: 4, 3: 4}
    for n in (1, 0):  # one directory on shared storage, in either order
        prepare_recovery(_recovery(tmp_path / "shared"), Cluster(2, 2, n, hosts))
    assert recovery_partitions(tmp_path / "shared") == {k: 4 for k in range(4)}


def test_a_directory_made_for_fewer_workers_than_the_cluster_has_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "recovery"
    directory.mkdir()
    init_db_dir(directory, 2)
    prepare_recovery(_recovery(directory), Cluster(1, 1))  # scaling down: bytewax redistributes the state
    prepare_recovery(_recovery(directory), Cluster(2, 1))
    with pytest.raises(ConfigError) as refused:
        prepare_recovery(_recovery(directory), Cluster(2, 2))
    text = str(refused.value)
    assert "holds a recovery store of 2 partitions" in text and "4 workers (2 processes × 2 workers)" in text
    assert "Run at most 2 workers in all, or point recovery.directory at a new directory" in text
    assert recovery_partitions(directory) == {0: 2, 1: 2}, "a refused directory is left as it was"


def test_an_incomplete_or_mixed_directory_is_refused_naming_the_files(tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    init_db_dir(incomplete, 3)
    (incomplete / "part-1.sqlite3").unlink()
    with pytest.raises(ConfigError, match=r"lacks partition part-1.sqlite3 of its 3"):
        prepare_recovery(_recovery(incomplete), Cluster(1, 1))
    # One process of several holds only its share: the others' partitions are on their hosts.
    prepare_recovery(_recovery(incomplete), Cluster(1, 2, 0, ("a:1", "b:1")))

    # A store that has run is never topped up with fresh partitions: part-1 is elsewhere, or lost.
    used = tmp_path / "used"
    used.mkdir()
    init_db_dir(used, 2)
    (used / "part-1.sqlite3").unlink()
    db = sqlite3.connect(used / "part-0.sqlite3")
    db.execute("INSERT INTO commits (part_index, commit_epoch) VALUES (0, 7)")
    db.commit()
    db.close()
    prepare_recovery(_recovery(used), Cluster(1, 2, 1, ("a:1", "b:1")))
    assert recovery_partitions(used) == {0: 2}

    mixed = tmp_path / "mixed"
    (mixed / "other").mkdir(parents=True)
    init_db_dir(mixed, 1)
    init_db_dir(mixed / "other", 2)
    (mixed / "other" / "part-1.sqlite3").rename(mixed / "part-1.sqlite3")
    with pytest.raises(ConfigError, match="mixes partitions of 2 recovery stores"):
        prepare_recovery(_recovery(mixed), Cluster(1, 1))

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / "part-0.sqlite3").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigError, match="is not a Bytewax recovery partition"):
        prepare_recovery(_recovery(foreign), Cluster(1, 1))


def _config(tmp_path: Path, extra: str = "") -> Path:
    """A production config whose edges are never reached (the launcher checks no edge itself)."""
    closed = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(f"""
kafka: {{brokers: ["127.0.0.1:{closed}"], tail: false}}
redis: {{url: "redis://127.0.0.1:{closed}/0"}}
sms: {{from_number: "+15125550199"}}
email: {{host: 127.0.0.1, port: {closed}, from_addr: alerts@example.com, starttls: false}}
outreach: {{templates: "{Path(__file__).resolve().parents[2] / 'config' / 'templates'}"}}
{extra}""")
    return path


def test_minus_p_refuses_a_recovery_directory_made_for_fewer_workers_before_starting_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "recovery"
    directory.mkdir()
    init_db_dir(directory, 1)
    config = _config(tmp_path, f"recovery: {{directory: '{directory}'}}\n")
    started: list[object] = []

    def supervise_recorded(*args: object, **kwargs: object) -> int:
        started.append(args)
        return 0

    monkeypatch.setattr(cluster, "supervise", supervise_recorded)
    result = CliRunner().invoke(app, ["run", "-c", str(config), "-p", "2"])
    assert result.exit_code == 1, result.output
    flat = _flat(result.output)
    assert "holds a recovery store of 1 partition, made for at most 1 worker, and this cluster runs 2 workers" in flat
    assert started == [], "refused before any process started"


@pytest.mark.integration
def test_each_process_of_minus_p_runs_the_start_up_checks_once_and_one_failing_stops_the_cluster(
    kafka_broker: str, twilio_standin: TwilioStandin, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    topics = topic_names("cluster-checks")
    create_topics(kafka_broker, topics.values())
    closed = f"redis://127.0.0.1:{free_port()}/0"
    config = write_run_config(tmp_path / "c.yaml", topics, kafka_broker, closed, twilio_standin, smtp_server,
                              tail=True, recovery=tmp_path / "recovery")
    run = start_run(config, twilio_standin, tmp_path / "run.log", "-p", "2")
    code = run.wait(timeout=60)
    output = run.output()
    assert code == 1, output
    assert _flat(output).count("start-up checks failed, nothing was started") == 2, output
    assert "fix redis.url" in _flat(output)
    assert recovery_partitions(tmp_path / "recovery") == {0: 2, 1: 2}, "the launcher initialised the directory"
    assert twilio_standin.messages == [] and smtp_server.messages == []

"""Scale-out path for real: two sweep workers share one study in a PostgreSQL server on loopback."""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_study import start_workers, write_search

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


def as_postgres(*command: str) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: under root, run its tools as the `postgres` user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, check=True, timeout=120)


@pytest.fixture
def postgres_url():
    if not PG_BIN or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL server binaries are not installed: apt-get install postgresql")
    bin_dir = PG_BIN[-1].parent
    data = Path(tempfile.mkdtemp(prefix="hyperlab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_postgres(str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
    as_postgres(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-l",
        str(data / "server.log"),
        "-w",
        "start",
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
    )
    try:
        as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "hyperlab")
        yield f"postgresql://postgres@127.0.0.1:{port}/hyperlab"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.postgres
def test_two_workers_share_a_postgresql_study(postgres_url, tmp_path):
    write_search(tmp_path, params="      lr: tag(log, interval(1e-3, 1e-2))")
    workers = start_workers(tmp_path, 2, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage='{postgres_url}'")
    assert [w.wait(timeout=600) for w in workers] == [0, 0], [w.stderr.read()[-2000:] for w in workers]
    done = optuna.load_study(study_name="tiny", storage=postgres_url).get_trials()
    assert [t.number for t in done] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in done)
    assert len({t.params["lr"] for t in done}) == 4  # no trial ran twice
    assert len({t.user_attrs["worker"] for t in done}) == 2
    assert not (tmp_path / "logs" / "study" / "study.journal").exists()  # the study lives in PostgreSQL only

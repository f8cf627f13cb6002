"""The services of a team's tracking server, run for real on loopback: PostgreSQL 15 and an S3 endpoint.

PostgreSQL runs from its server binaries (initdb, pg_ctl), as the `postgres` user when the tests
run as root, because PostgreSQL refuses to run as root. moto's server stands in for MinIO or S3.
"""

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import VENV_BIN

from tutorial import server_process

POSTGRES_PASSWORD = "test-only-postgres-password"  # a throwaway database on loopback
S3_BUCKET = "mlflow-artifacts"
# moto accepts any credentials; boto3 only needs some to sign its requests.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


POSTGRES_MAJOR = 15  # the version docs/team-server.md names and .ci/run installs


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: $PG_BIN, Debian's /usr/lib/postgresql/15/bin, or the PATH."""
    candidates = [os.environ.get("PG_BIN", ""), f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin"]
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).parent))
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").is_file()), None)


def postgres_major_version(bin_dir: Path) -> int:
    """The major version of the server in `bin_dir`: "postgres (PostgreSQL) 15.18" gives 15."""
    answer = subprocess.run([bin_dir / "postgres", "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"\(PostgreSQL\) (\d+)", answer)[1])


def _as_postgres_user(command: list) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    command = [str(part) for part in command]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Postgres:
    bin_dir: Path
    folder: Path  # holds data/, the log and the socket; owned by the user PostgreSQL runs as
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str, user: str = "postgres") -> str:
        """A SQLAlchemy URL without the password: libpq reads it from $PGPASSWORD, so it stays out of `ps`."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        pg_ctl = [self.bin_dir / "pg_ctl", "-D", self.data, "-l", self.folder / "postgres.log", "-o", options]
        subprocess.run(_as_postgres_user([*pg_ctl, "-w", "start"]), check=True, capture_output=True)

    def stop(self) -> None:
        # pg_ctl stops the server whose process id is in data/postmaster.pid, and waits for it.
        pg_ctl = [self.bin_dir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres_user(pg_ctl), check=True, capture_output=True)

    def run_sql(self, *statements: str) -> None:
        """Run statements as the superuser, each in its own transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), password=POSTGRES_PASSWORD, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[Postgres]:
    """A new PostgreSQL cluster in a temp folder, on a free loopback port, with password logins over TCP."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-postgres-"))
    password_file = folder / "password"
    password_file.write_text(POSTGRES_PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(password_file, "postgres")
    postgres = Postgres(bin_dir, folder, server_process.free_port())
    # fmt: off
    initdb = [
        bin_dir / "initdb", "-D", postgres.data, "-U", "postgres", "-E", "UTF8",
        "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
    ]
    # fmt: on
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True)
    postgres.start()
    try:
        yield postgres
    finally:
        if (postgres.data / "postmaster.pid").exists():
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def running_s3(log_folder: Path) -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port, with the bucket for artifacts. Yields its URL."""
    import boto3

    port = server_process.free_port()
    log_file = log_folder / "moto.log"
    command = [str(VENV_BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = server_process.start(command, log_file, cwd=log_folder)
    try:
        url = f"http://127.0.0.1:{port}"
        server_process.wait_until_healthy(server, f"{url}/moto-api/", log_file)
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket=S3_BUCKET)
        yield url
    finally:
        server_process.stop(server)

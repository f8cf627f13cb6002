"""The services of a team's tracking server, run for real on loopback: PostgreSQL 15 and an S3 endpoint.

PostgreSQL runs from its server binaries (initdb, pg_ctl), as the `postgres` user when the tests
run as root, because PostgreSQL refuses to run as root. moto's server stands in for MinIO or S3.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers import REPO

from tutorial import server_process
from tutorial.venv import VENV_BIN

POSTGRES_PASSWORD = "test-only-postgres-password"  # a throwaway database on loopback
S3_BUCKET = "mlflow-artifacts"
S3_REGION = "us-east-1"

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

    def client_env(self) -> dict:
        """The environment in which PostgreSQL's own clients (psql, pg_dump) reach this cluster as its superuser."""
        path = f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}"
        return {
            **os.environ,
            "PATH": path,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGPASSWORD": POSTGRES_PASSWORD,
        }


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


@dataclass
class S3Store:
    url: str
    credentials: dict  # the server's keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION


def s3_client(store: S3Store):
    import boto3

    keys = store.credentials
    return boto3.client(
        "s3",
        endpoint_url=store.url,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        region_name=keys["AWS_DEFAULT_REGION"],
    )


OTHER_BUCKET = "another-teams-bucket"  # in the same store: the server's keys must not reach it
# The actions that set the store up: two buckets, the server's user, its policy and its key. moto checks
# credentials and IAM policies on every request after these.
SETUP_ACTIONS = 5


@contextmanager
def running_s3(log_folder: Path) -> Iterator[S3Store]:
    """moto's S3 server on a free loopback port, with the artifact bucket, enforcing IAM policies.

    The server's keys are made as docs/team-server.md makes them: a user whose only policy is
    deploy/s3-artifacts-policy.json. They are the only keys the tests give MLflow, or use themselves.
    """
    import boto3

    port = server_process.free_port()
    log_file = log_folder / f"moto-{port}.log"
    command = [str(VENV_BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)}
    server = server_process.start(command, log_file, cwd=log_folder, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        server_process.wait_until_healthy(server, f"{url}/moto-api/", log_file)
        setup = {"endpoint_url": url, "region_name": S3_REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        s3, iam = boto3.client("s3", **setup), boto3.client("iam", **setup)
        for bucket in (S3_BUCKET, OTHER_BUCKET):
            s3.create_bucket(Bucket=bucket)
        iam.create_user(UserName="mlflow-server")
        policy = (REPO / "deploy" / "s3-artifacts-policy.json").read_text()
        iam.put_user_policy(UserName="mlflow-server", PolicyName="mlflow-artifacts", PolicyDocument=policy)
        key = iam.create_access_key(UserName="mlflow-server")["AccessKey"]
        credentials = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": S3_REGION,
        }
        yield S3Store(url, credentials)
    finally:
        server_process.stop(server)


TEAM_HOSTNAME = "mlflow.example.com"  # the name docs/team-server.md gives clients, and the certificate's


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for TEAM_HOSTNAME, made for this test run: (certificate, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TEAM_HOSTNAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TEAM_HOSTNAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


def nginx_binary() -> Path | None:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    return Path(found) if found else None


@contextmanager
def running_tls_proxy(folder: Path, upstream_port: int) -> Iterator[int]:
    """Debian's nginx with deploy/nginx.conf, on a free loopback port, in front of MLflow. Yields its port.

    The compose file's addresses become loopback ones and the certificate is made for this run; every other
    line (TLS, the Host passed on, the rate limit) is the file as it ships.
    """
    port, plain_port = server_process.free_port(), server_process.free_port()
    certificate, key = make_certificate(folder)
    site = (REPO / "deploy" / "nginx.conf").read_text()
    replacements = [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{plain_port};"),
        ("proxy_pass http://mlflow:5000;", f"proxy_pass http://127.0.0.1:{upstream_port};"),
        ("/etc/nginx/certs/fullchain.pem", str(certificate)),
        ("/etc/nginx/certs/privkey.pem", str(key)),
    ]
    for old, new in replacements:
        assert old in site, old
        site = site.replace(old, new)
    (folder / "mlflow.conf").write_text(site)
    temp = folder / "nginx-temp"
    temp.mkdir(exist_ok=True)
    (folder / "nginx.conf").write_text(
        # As root, nginx's workers would run as `nobody`, who cannot enter the test's private temp folder.
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/nginx-error.log;\n"
        "events {}\n"
        f"http {{\n  access_log {folder}/nginx-access.log;\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {folder}/mlflow.conf;\n}}\n"
    )
    log_file = folder / "nginx.log"
    proxy = server_process.start([str(nginx_binary()), "-c", str(folder / "nginx.conf")], log_file, cwd=folder)
    try:
        deadline = time.monotonic() + 30
        while not server_process.port_is_taken(port):
            if proxy.poll() is not None or time.monotonic() > deadline:
                raise server_process.ServerFailedToStart(f"nginx did not start:\n{server_process.tail(log_file)}")
            time.sleep(0.1)
        yield port
    finally:
        server_process.stop(proxy)

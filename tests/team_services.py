"""The services of a team's tracking server, run for real on loopback: PostgreSQL 15 and an S3 endpoint.

PostgreSQL runs from its server binaries (initdb, pg_ctl), as the `postgres` user when the tests
run as root, because PostgreSQL refuses to run as root. moto's server stands in for MinIO or S3.
"""

import json
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

import yaml
from guide_commands import CREATE_BUCKET, CREATE_SERVER_KEY, CREATE_SERVER_USER, PUT_SERVER_POLICY
from helpers import REPO

from tutorial import server_process
from tutorial.venv import VENV_BIN, with_venv_on_path

POSTGRES_PASSWORD = "test-only-postgres-password"  # a throwaway database on loopback

# The operator's names, as deploy/.env holds them: not the page's examples, so that a name left written into a file
# of deploy/ (mlflow.example.com, mlflow-artifacts) fails the tests that render and run it.
TEAM_NAMES = {
    "MLFLOW_DOMAIN": "mlflow.research.acme.test",
    "MLFLOW_BUCKET": "acme-research-mlflow-artifacts",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "MLFLOW_RATE_PER_ADDRESS": "10",
    "MLFLOW_BURST_PER_ADDRESS": "40",
}
TEAM_HOSTNAME = TEAM_NAMES["MLFLOW_DOMAIN"]  # the name clients reach, and the certificate's
S3_BUCKET = TEAM_NAMES["MLFLOW_BUCKET"]
S3_REGION = TEAM_NAMES["AWS_DEFAULT_REGION"]


def render_like_compose(text: str, env: dict) -> str:
    """Docker Compose's interpolation of a compose file: ${NAME} and ${NAME:?message} take the value in `env` (.env);
    a blank or missing one stops compose, as it would."""

    def value(match: re.Match) -> str:
        name, rest = match[1], match[2] or ""
        if rest.startswith(":?") and not env.get(name):
            raise ValueError(f"compose would stop: {rest[2:]}")
        return env.get(name, "")

    return re.sub(r"\$\{([A-Z0-9_]+)((?::\?|:-)[^}]*)?\}", value, text)


def render_like_the_nginx_image(template: Path, container_env: dict) -> str:
    """What the nginx image's entrypoint writes for a file of /etc/nginx/templates: envsubst, told to fill in only the
    variables defined in the container's environment, so that nginx's own $variables stay."""
    defined = " ".join(f"${{{name}}}" for name in container_env)
    result = subprocess.run(
        ["envsubst", defined], input=template.read_text(), env=container_env, capture_output=True, text=True, check=True
    )
    return result.stdout


def page_arguments(command: str) -> list[str]:
    """A command of the page turned into arguments by bash, with the operator's names (TEAM_NAMES) in the shell."""
    env = {**os.environ, **TEAM_NAMES}
    printed = page_command(f'printf "%s\\0" {command}', REPO, env, capture_output=True, check=True)
    return printed.stdout.split("\0")[:-1]


def page_command(command: str, cwd: Path, env: dict, **kwargs) -> subprocess.CompletedProcess:
    """A shell command of docs/team-server.md, run by bash as a reader's terminal would, in `cwd` (deploy/)."""
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, text=True, **kwargs)


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

    def start(self, wait: bool = True) -> None:
        """Start the server; with wait=False, return before it accepts connections, as `docker compose up -d` does."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        pg_ctl = [self.bin_dir / "pg_ctl", "-D", self.data, "-l", self.folder / "postgres.log", "-o", options]
        subprocess.run(_as_postgres_user([*pg_ctl, "-w" if wait else "-W", "start"]), check=True, capture_output=True)

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
def running_postgres(bin_dir: Path, wait: bool = True) -> Iterator[Postgres]:
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
    postgres.start(wait)
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


def deploy_folder(folder: Path, s3: S3Store) -> Path:
    """deploy/ as an operator has it, where the page's commands run: the shipped files, and a .env with the
    operator's names, the S3 endpoint and the server's keys (the other secrets play no part in these tests)."""
    shutil.copytree(REPO / "deploy", folder, dirs_exist_ok=True)
    settings = {**TEAM_NAMES, **s3.credentials, "MLFLOW_S3_ENDPOINT_URL": s3.url}
    (folder / ".env").write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    return folder


OTHER_BUCKET = "another-teams-bucket"  # in the same store: the server's keys must not reach it
# The actions that set the store up: two buckets, the server's user, its policy and its key. moto checks
# credentials and IAM policies on every request after these.
SETUP_ACTIONS = 5


@contextmanager
def running_s3(log_folder: Path) -> Iterator[S3Store]:
    """moto's S3 server on a free loopback port, with the artifact bucket, enforcing IAM policies.

    The bucket and the server's keys are made by the page's own `aws` commands: a user whose only policy is
    deploy/s3-artifacts-policy.json, filled in. They are the only keys the tests give MLflow, or use themselves.
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
        # The administrator's setup, as the page runs it, against this S3 server: the bucket in its region, and the
        # server's user, policy (filled in with the bucket's name) and key. moto counts these as its unchecked setup.
        # The administrator's own credentials (moto takes any for its setup), and the names read from .env.
        admin = with_venv_on_path({**os.environ, **TEAM_NAMES, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
        commands = [CREATE_BUCKET, CREATE_SERVER_USER, PUT_SERVER_POLICY, CREATE_SERVER_KEY]
        answers = [
            page_command(f"{command} --endpoint-url {url}", REPO / "deploy", admin, capture_output=True, check=True)
            for command in commands
        ]
        key = json.loads(answers[-1].stdout)["AccessKey"]
        setup = {"endpoint_url": url, "region_name": S3_REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        boto3.client("s3", **setup).create_bucket(  # another team's, in the same store
            Bucket=OTHER_BUCKET, CreateBucketConfiguration={"LocationConstraint": S3_REGION}
        )
        credentials = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": S3_REGION,
        }
        yield S3Store(url, credentials)
    finally:
        server_process.stop(server)


@dataclass
class CertificateAuthority:
    """A certificate authority made for this test run (trustme), which issues certificates for TEAM_HOSTNAME."""

    authority: object  # trustme.CA
    certificate: Path  # the authority's own certificate: what clients trust (MLFLOW_TRACKING_SERVER_CERT_PATH)

    def issue(self, folder: Path) -> tuple[Path, Path]:
        """A new certificate for TEAM_HOSTNAME, and its key, as certbot lays them out: (fullchain.pem, privkey.pem)."""
        folder.mkdir(parents=True, exist_ok=True)
        leaf = self.authority.issue_cert(TEAM_HOSTNAME)
        chain, key = folder / "fullchain.pem", folder / "privkey.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        return chain, key


def certificate_authority(folder: Path) -> CertificateAuthority:
    import trustme

    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(folder / "team-ca.pem"))
    return CertificateAuthority(authority, folder / "team-ca.pem")


def nginx_binary() -> Path | None:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    return Path(found) if found else None


@dataclass
class Proxy:
    port: int  # HTTPS, in place of 443
    plain_port: int  # HTTP, in place of 80
    folder: Path  # its nginx.conf, and certs/ and certbot-webroot/ as in deploy/
    nginx_conf: Path

    def reload_command(self) -> str:
        """`nginx -s reload`, as `docker compose exec proxy nginx -s reload` runs it in the container."""
        return f"{nginx_binary()} -c {self.nginx_conf} -s reload"


@contextmanager
def running_tls_proxy(
    folder: Path, upstream_port: int, authority: CertificateAuthority, **names: str
) -> Iterator[Proxy]:
    """Debian's nginx with deploy/nginx.conf.template, rendered as the nginx image renders it with the compose file's
    environment (TEAM_NAMES, or `names` in their place), on free loopback ports, in front of MLflow.

    The compose network's addresses become loopback ones, and the container's paths the test's folders; every other
    line (TLS, the Host passed on, the rate limit, the challenge files) is the template as it ships.
    """
    port, plain_port = server_process.free_port(), server_process.free_port()
    authority.issue(folder / "certs")
    (folder / "certbot-webroot").mkdir(exist_ok=True)
    proxy_env = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())["services"]["proxy"]["environment"]
    container_env = {name: render_like_compose(value, {**TEAM_NAMES, **names}) for name, value in proxy_env.items()}
    site = render_like_the_nginx_image(REPO / "deploy" / "nginx.conf.template", {**container_env, "PATH": "/usr/bin"})
    replacements = [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{plain_port};"),
        ("proxy_pass http://mlflow:5000;", f"proxy_pass http://127.0.0.1:{upstream_port};"),
        ("/etc/nginx/certs/", f"{folder}/certs/"),
        ("/var/www/certbot", f"{folder}/certbot-webroot"),
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
        + f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/nginx-error.log notice;\n"
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
        yield Proxy(port, plain_port, folder, folder / "nginx.conf")
    finally:
        server_process.stop(proxy)

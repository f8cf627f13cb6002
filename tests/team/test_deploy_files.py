"""deploy/: the docker-compose setup for a team server. Docker cannot pull images here, so these tests
read the files: the compose file parses, and its server runs the command of docs/team-server.md, flag for flag, with
the operator's names from .env; nothing else names the examples; what the page writes stays out of git; and the
bare-metal install resolves on every Python the guide supports. test_team_server.py runs the rendered files."""

import configparser
import os
import re
import subprocess
from importlib.metadata import distribution

import team_services
import yaml
from guide_commands import SERVING_PAGE, TEAM_SERVER, WEBHOOK_SERVER
from helpers import REPO, git
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from maintainer.tracking_server import SERVER_SETTINGS, WEBHOOK_SETTINGS

DEPLOY = REPO / "deploy"
COMPOSE_TEXT = (DEPLOY / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)


def flags(command: list[str]) -> dict:
    """`--name value` and bare `--name` pairs of a command line, in a dict."""
    result, name = {}, None
    for word in command:
        if word.startswith("--"):
            name = word
            result[name] = None
        elif name:
            result[name], name = word, None
    return result


def test_compose_has_the_services_with_healthchecks():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "mlflow", "proxy", "scoring"}
    for name in ("postgres", "mlflow", "scoring"):
        assert "healthcheck" in services[name], name
    assert services["mlflow"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["proxy"]["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    assert services["scoring"]["depends_on"] == {"mlflow": {"condition": "service_healthy"}}


def test_only_the_tls_proxy_is_published():
    published = {name for name, service in COMPOSE["services"].items() if "ports" in service}
    assert published == {"proxy"}
    assert COMPOSE["services"]["proxy"]["ports"] == ["443:443", "80:80"]
    # The nginx image renders /etc/nginx/templates/*.template into /etc/nginx/conf.d/ when it starts.
    assert (
        "./nginx.conf.template:/etc/nginx/templates/mlflow.conf.template:ro" in COMPOSE["services"]["proxy"]["volumes"]
    )
    nginx = (DEPLOY / "nginx.conf.template").read_text()
    assert "proxy_pass http://mlflow:5000;" in nginx and "listen 443 ssl;" in nginx
    assert "return 301 https://$host$request_uri;" in nginx  # port 80 redirects, but for certbot's challenges


def test_every_long_running_service_restarts_on_failure():
    for name, service in COMPOSE["services"].items():
        assert service.get("restart") == "unless-stopped", name


def test_images_are_pinned_to_versions():
    images = {name: service["image"] for name, service in COMPOSE["services"].items() if "image" in service}
    for name, image in images.items():
        assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z]+)?", image), f"{name}: {image}"
    assert images["postgres"].startswith(f"postgres:{team_services.POSTGRES_MAJOR}.")  # the version the tests run
    base = re.search(r"^FROM (\S+)$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base


PYTHON_3_11_ON_LINUX = {
    "python_full_version": "3.11.14",
    "python_version": "3.11",
    "sys_platform": "linux",
    "extra": "",
}


def pins_for_the_image(path) -> dict[str, str]:
    """{name: "==version"} of a lock file, for the image's Python 3.11 on Linux."""
    pins = {}
    for line in path.read_text().splitlines():
        if line[:1].isalpha():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({**PYTHON_3_11_ON_LINUX, "extra": ""}):
                pins[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return pins


def test_the_image_runs_as_a_user_and_installs_only_pinned_packages():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+$", dockerfile, re.MULTILINE)
    assert "--no-deps -r /tmp/requirements.txt -r /tmp/requirements-team.txt" in dockerfile
    team = pins_for_the_image(DEPLOY / "requirements-team.txt")
    assert team, "deploy/requirements-team.txt pins nothing"
    # The team's extras are pinned where the tests' own lock pins them for Python 3.11: the versions tested.
    tested = pins_for_the_image(REPO / "requirements-dev.txt")
    assert {name: tested[name] for name in team} == team
    # --no-deps installs exactly the two files, so whatever the extras need must be in one of them.
    installed = set(team) | set(pins_for_the_image(REPO / "requirements.txt"))
    for name in team:
        for needed in map(Requirement, distribution(name).requires or []):
            if needed.marker is None or needed.marker.evaluate({**PYTHON_3_11_ON_LINUX, "extra": ""}):
                assert canonicalize_name(needed.name) in installed, f"{name} needs {needed.name}"


def test_the_server_settings_are_the_ones_the_tests_run():
    environment = COMPOSE["services"]["mlflow"]["environment"]
    for name, value in SERVER_SETTINGS.items():
        assert environment[name] == value, name


def env_example() -> dict:
    return dict(
        line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines() if line and line[0] != "#"
    )


def test_env_example_ships_no_usable_secret_and_compose_refuses_blanks():
    example = env_example()
    assert example and all(value == "" for value in example.values()), example
    references = re.findall(r"\$\{([A-Z0-9_]+)([^}]*)\}", (DEPLOY / "docker-compose.yml").read_text())
    for name, rest in references:
        # ${NAME:?message}: compose stops with the message when NAME is unset or empty.
        assert rest.startswith(":?"), f"${{{name}{rest}}} lets compose start without it"


def test_compose_server_command_is_the_readme_command():
    """Both rendered with the operator's names: compose's interpolation of .env, and bash's of the shell's variables."""
    # .env filled in: the operator's names, and a value for every secret (which play no part in the command).
    filled = {name: team_services.TEAM_NAMES.get(name, f"test-only-{name.lower()}") for name in env_example()}
    rendered = yaml.safe_load(team_services.render_like_compose(COMPOSE_TEXT, filled))
    compose_command = [str(word) for word in rendered["services"]["mlflow"]["command"]]
    readme_command = team_services.page_arguments(TEAM_SERVER)
    assert compose_command[:2] == readme_command[:2] == ["mlflow", "server"]
    assert flags(compose_command) == flags(readme_command)
    team_flags = {"--backend-store-uri", "--artifacts-destination", "--app-name", "--allowed-hosts", "--workers"}
    assert team_flags <= set(flags(readme_command))
    assert flags(readme_command)["--allowed-hosts"].startswith(team_services.TEAM_HOSTNAME + ",")
    assert flags(readme_command)["--artifacts-destination"] == f"s3://{team_services.S3_BUCKET}"


def test_every_secret_comes_from_env_and_is_listed_in_env_example():
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    assert used == set(env_example())


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|KEY_ID|ROOT_USER", re.IGNORECASE)


def environment_of(service: dict) -> dict:
    environment = service.get("environment", {})
    if isinstance(environment, list):  # the `- NAME=value` form
        environment = dict(item.split("=", 1) for item in environment)
    return environment


def test_every_secret_like_value_in_compose_is_a_reference_to_env():
    """A password typed straight into the compose file would pass the test above: every value whose name looks
    like a secret must be one `${NAME}` reference, and nothing else."""
    checked = 0
    for service_name, service in COMPOSE["services"].items():
        for name, value in environment_of(service).items():
            if SECRET_NAME.search(name):
                checked += 1
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*)?\}", str(value)), f"{service_name}: {name}={value}"
    assert checked >= 5, "the compose file's secrets were not found: the check looks at nothing"


def test_auth_config_holds_no_secret():
    config = configparser.ConfigParser()
    config.read(DEPLOY / "basic_auth.ini")
    assert "admin_password" not in config["mlflow"]  # it comes from $MLFLOW_AUTH_ADMIN_PASSWORD
    # postgresql://user@host: no ":password" before the "@"; the driver reads $PGPASSWORD.
    assert re.fullmatch(r"postgresql://[^:@/]+@[^/]+/\w+", config["mlflow"]["database_uri"])


def test_env_files_with_secrets_are_ignored_by_git():
    ignored = git("check-ignore", "deploy/.env", ".env")
    assert ignored.stdout.split() == ["deploy/.env", ".env"], ignored.stderr
    example = git("check-ignore", "deploy/.env.example")
    assert example.returncode == 1, example.stderr  # not ignored: it ships


EXAMPLES = ("mlflow.example.com", "mlflow-artifacts")


def test_no_file_of_deploy_names_the_examples_but_in_comments():
    """The operator's names come from .env; a name left written into a file would serve someone else's."""
    for path in DEPLOY.iterdir():
        if path.is_file() and path.name != ".env.example":
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                code = line.split("#")[0] if path.suffix != ".json" else line
                assert not any(example in code for example in EXAMPLES), f"{path.name}:{number}: {line}"


# Every place the page's commands write a key, a dump or an .env: deploy/.env, the certificates, the backups, the
# challenge files (docs/team-server.md), with a file name in each folder as the commands write it.
WRITTEN_BY_THE_PAGE = [
    "deploy/.env",
    "deploy/certs/fullchain.pem",
    "deploy/certs/privkey.pem",
    "deploy/backup/mlflow.dump",
    "deploy/backup/mlflow_auth.dump",
    "deploy/backup/artifacts/1/models/m-0/artifacts/MLmodel",
    "deploy/certbot-webroot/.well-known/acme-challenge/a-token",
]


def test_every_key_dump_and_env_the_page_writes_is_ignored_by_git():
    ignored = git("check-ignore", *WRITTEN_BY_THE_PAGE).stdout.split()
    assert ignored == WRITTEN_BY_THE_PAGE
    page = (REPO / "docs/team-server.md").read_text()
    for folder in ("certs/", "backup/", "certbot-webroot"):
        assert folder in page, folder


def test_basic_auth_ships_the_login_cache_the_tests_run_and_the_page_explains():
    config = configparser.ConfigParser()
    config.read(DEPLOY / "basic_auth.ini")
    assert config["mlflow"]["auth_cache_ttl_seconds"] == "60"
    assert "`auth_cache_ttl_seconds = 60`" in (REPO / "docs/team-server.md").read_text()


def test_the_bare_metal_install_resolves_on_every_python_the_guide_supports():
    """`pip install -r requirements.txt -r deploy/requirements-team.txt`, resolved by uv for every Python from the
    oldest the guide supports on (--universal), wheels only: a pin that needs a newer Python fails here, as
    wtforms 3.3 would on 3.10."""
    from tutorial.check_python import OLDEST
    from tutorial.venv import VENV_BIN

    command = [str(VENV_BIN / "uv"), "pip", "compile", "requirements.txt", "deploy/requirements-team.txt", "--no-deps"]
    command += ["--only-binary", ":all:", "--universal", "--python-version", "{}.{}".format(*OLDEST)]
    result = subprocess.run([*command, "--quiet", "-o", os.devnull], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_scoring_service_runs_the_follower_as_the_tests_do():
    """tests/team/test_scoring_follower.py runs the follower with these flags, on loopback addresses and free ports."""
    service = COMPOSE["services"]["scoring"]
    command = [str(word) for word in service["command"]]
    assert command[:2] == ["python", "follower.py"]
    assert set(flags(command)) == {"--listen", "--webhook-listen", "--folder"}
    assert environment_of(service)["MLFLOW_TRACKING_USERNAME"] == "scoring"  # the user who may only read
    image = (REPO / service["build"]["dockerfile"]).read_text()
    assert "COPY deploy/follower.py ." in image and "install -y --no-install-recommends nginx" in image


def test_the_webhook_key_is_set_wherever_the_serving_page_starts_a_server():
    """Without one key for every worker, each makes its own and cannot read the webhook's secret (mlflow#19896)."""
    page_settings = dict(re.findall(r"(MLFLOW_WEBHOOK_\w+)=(\$\([^)]*\)|\S+)", WEBHOOK_SERVER))
    assert page_settings == {**WEBHOOK_SETTINGS, "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "$(cat webhook.key)"}
    compose = {
        name: value
        for name, value in environment_of(COMPOSE["services"]["mlflow"]).items()
        if name.startswith("MLFLOW_WEBHOOK_")
    }
    key = "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"
    assert page_settings.pop(key) == "$(cat webhook.key)" and compose.pop(key).startswith(f"${{{key}:?")
    assert page_settings == compose
    assert "--workers 2" in WEBHOOK_SERVER  # the tests' server: more than one worker
    # Every command of the page's shell blocks that starts a tracking server.
    page = re.sub(r"\s*\\\n\s*", " ", (REPO / SERVING_PAGE).read_text())  # a long command, joined again
    blocks = re.findall(r"```bash\n(.*?)```", page, re.S)
    starts = [line for block in blocks for line in block.splitlines() if re.search(r"\bmlflow (ui|server)\b", line)]
    assert starts and all(f"{key}=" in line for line in starts), starts

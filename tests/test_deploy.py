"""deploy/: the docker-compose setup for a team server. Docker cannot pull images here, so these tests
read the files: the compose file parses, and its server runs the command of docs/team-server.md, flag for flag."""

import configparser
import re
import shlex

import yaml
from conftest import REPO, git
from guide_commands import TEAM_SERVER

DEPLOY = REPO / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


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
    assert set(services) == {"postgres", "minio", "create-bucket", "mlflow"}
    for name in ("postgres", "minio", "mlflow"):
        assert "healthcheck" in services[name], name
    assert services["mlflow"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "create-bucket": {"condition": "service_completed_successfully"},
    }
    assert "mlflow-artifacts" in services["create-bucket"]["entrypoint"]


def test_compose_server_command_is_the_readme_command():
    compose_command = [str(word) for word in COMPOSE["services"]["mlflow"]["command"]]
    readme_command = shlex.split(TEAM_SERVER)
    assert compose_command[:2] == readme_command[:2] == ["mlflow", "server"]
    assert flags(compose_command) == flags(readme_command)
    team_flags = {"--backend-store-uri", "--artifacts-destination", "--app-name", "--allowed-hosts", "--workers"}
    assert team_flags <= set(flags(readme_command))


def test_every_secret_comes_from_env_and_is_listed_in_env_example():
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", compose_text))
    example = dict(
        line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines() if line and line[0] != "#"
    )
    assert used == set(example)


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
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), f"{service_name}: {name}={value}"
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

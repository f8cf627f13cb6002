"""The guide's commands, exactly as README.md (or the docs/ page in SHOWN_IN) shows them.

The tests run these strings, and repository/test_readme.py checks that the page shows each one,
so the README and the tests cannot drift apart. A <placeholder> stands for a path that the
README shows a real example of. Each step's own command comes from tutorial/steps.py.
"""

import re

from maintainer.tracking_server import WEBHOOK_SETTINGS
from tutorial import steps
from tutorial.names import SERVING_PORT

TUTORIAL = "make tutorial"
TEST = "make test"
SMOKE_TEST = steps.SMOKE_TEST.command
RUN_NOTEBOOK = steps.ML_PROJECT.command
# The README shows real ones: the path the UI shows, mlflow-artifacts:/<exp id>/models/m-<id>/artifacts/MLmodel,
# and the same folder on disk, mlartifacts/<exp id>/models/m-<id>/artifacts.
INFER_FROM_UI_PATH = "python model_inferencing.py <ui-path>"
INFER_FROM_FOLDER = steps.INFERENCE_FROM_FILES.command
INFER_BY_ALIAS = steps.MODEL_REGISTRY.command
INFER_BY_VERSION = "python model_inferencing.py models:/tracking-iris-lr/2"
INFER_BY_ID = "python model_inferencing.py models:/m-<model-id>"

# Serving. The tests run these on a free port in place of SERVING_PORT (on_port).
SERVE = steps.SERVING.command
MAKE_SERVE = "make serve"
MAKE_SERVE_VERSION = "make serve MODEL=models:/tracking-iris-lr/2"
PING = "curl -i http://127.0.0.1:5001/ping"
# A setosa and a virginica, by the names of the model's features (step 8).
PREDICT_DATAFRAME_SPLIT = (
    "curl http://127.0.0.1:5001/invocations -H 'Content-Type: application/json'"
    """ -d '{"dataframe_split": {"columns": ["sepal length (cm)", "sepal width (cm)","""
    """ "petal length (cm)", "petal width (cm)"], "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}'"""
)
# The same request in Python, for PowerShell (whose `curl` is another program) and any other shell.
PREDICT_ANY_SHELL = (
    """python -c "import requests; print(requests.post('http://127.0.0.1:5001/invocations', json={'dataframe_split':"""
    """ {'columns': ['sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)'],"""
    """ 'data': [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}}).text)\""""
)
# Rows without names, by position: the server refuses them (docs/under-the-hood.md).
PREDICT_INPUTS = (
    "curl http://127.0.0.1:5001/invocations -H 'Content-Type: application/json'"
    """ -d '{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'"""
)


def on_port(command: str, port: int) -> str:
    """A serving command on `port` in place of the guide's: its `-p` flag, or the port of its URL."""
    flag_or_url = rf"(?<=-p ){SERVING_PORT}\b|(?<=//127\.0\.0\.1:){SERVING_PORT}\b"
    moved, count = re.subn(flag_or_url, str(port), command)
    assert count == 1, f"{command!r} names its port {count} times"
    return moved


# docs/team-server.md. Its commands run in deploy/, with the operator's names and keys from deploy/.env in the
# shell; the tests give them names that are not the examples (team_services.TEAM_NAMES). For the server, they replace
# the database's address, the port and --host 0.0.0.0 (they bind to 127.0.0.1 only); every flag stays.
# deploy/docker-compose.yml carries the same flags. Clients reach it through the TLS proxy, at the address
# CLIENT_LOGIN gives, whose example domain the tests replace with theirs.
COPY_ENV = "cp .env.example .env"
READ_ENV = "set -a; . ./.env; set +a"
TEAM_SERVER = (
    "mlflow server --backend-store-uri postgresql://mlflow@postgres:5432/mlflow"
    ' --artifacts-destination "s3://$MLFLOW_BUCKET" --serve-artifacts'
    ' --host 0.0.0.0 --port 5000 --allowed-hosts "$MLFLOW_DOMAIN,localhost:5000,127.0.0.1:5000,mlflow:5000"'
    ' --cors-allowed-origins "https://$MLFLOW_DOMAIN" --workers 4 --app-name basic-auth'
)
INSTALL_TEAM_SERVER = "pip install -r ../requirements.txt -r requirements-team.txt"
EXAMPLE_DOMAIN = "mlflow.example.com"
CLIENT_LOGIN = f"export MLFLOW_TRACKING_URI=https://{EXAMPLE_DOMAIN}"
CLIENT_RETRIES = "export MLFLOW_HTTP_REQUEST_MAX_RETRIES=3"  # what the team's clients set, beside the login
# The admin changes a password; the tests put real ones in place of OLD_PASSWORD and NEW_PASSWORD.
CHANGE_ADMIN_PASSWORD = (
    f"curl -u admin:OLD_PASSWORD -X PATCH https://{EXAMPLE_DOMAIN}/api/2.0/mlflow/users/update-password"
    """ -H 'Content-Type: application/json' -d '{"username": "admin", "current_password": "OLD_PASSWORD","""
    """ "password": "NEW_PASSWORD"}'"""
)
# The admin creates a user and removes one; the tests put real passwords in place of ADMIN_PASSWORD and USER_PASSWORD.
CREATE_USER = (
    f"curl -u admin:ADMIN_PASSWORD -X POST https://{EXAMPLE_DOMAIN}/api/2.0/mlflow/users/create"
    """ -H 'Content-Type: application/json' -d '{"username": "alice", "password": "USER_PASSWORD"}'"""
)
DELETE_USER = (
    f"curl -u admin:ADMIN_PASSWORD -X DELETE https://{EXAMPLE_DOMAIN}/api/2.0/mlflow/users/delete"
    """ -H 'Content-Type: application/json' -d '{"username": "alice"}'"""
)

# The bucket, and the server's keys that reach it alone: an administrator runs these with the names in the shell.
READ_NAMES = "export $(grep -E '^(MLFLOW_BUCKET|AWS_DEFAULT_REGION)=' .env)"
CREATE_BUCKET = (
    'aws s3api create-bucket --bucket "$MLFLOW_BUCKET" --region "$AWS_DEFAULT_REGION"'
    ' --create-bucket-configuration LocationConstraint="$AWS_DEFAULT_REGION"'
)
CREATE_SERVER_USER = "aws iam create-user --user-name mlflow-server"
PUT_SERVER_POLICY = (
    "aws iam put-user-policy --user-name mlflow-server --policy-name mlflow-artifacts"
    """ --policy-document "$(envsubst '$MLFLOW_BUCKET' < s3-artifacts-policy.json)\""""
)
CREATE_SERVER_KEY = "aws iam create-access-key --user-name mlflow-server"

# Certificates: certbot's renewal through the proxy, and its deploy hook (deploy/renew-certificate.sh).
RENEW_CERTIFICATE = 'certbot renew --webroot -w "$PWD/certbot-webroot" --deploy-hook "$PWD/renew-certificate.sh"'

# Backup, restore and upgrade: the page runs pg_dump, pg_restore, pg_isready and mlflow in the containers
# (`docker compose exec -T postgres ...`, `docker compose run --rm mlflow ...`); the tests run them against their own
# cluster, and the aws commands against their S3 server.
DUMP_TRACKING = "pg_dump -U postgres --format=custom mlflow"
DUMP_AUTH = "pg_dump -U postgres --format=custom mlflow_auth"
BACKUP_BUCKET = 'aws s3 sync "s3://$MLFLOW_BUCKET" backup/artifacts --endpoint-url "$MLFLOW_S3_ENDPOINT_URL"'
WAIT_FOR_POSTGRES = "pg_isready -U postgres -d mlflow"
RESTORE_TRACKING = "pg_restore -U postgres --no-owner --role=mlflow --dbname=mlflow"
RESTORE_AUTH = "pg_restore -U postgres --no-owner --role=mlflow --dbname=mlflow_auth"
RESTORE_BUCKET = 'aws s3 sync backup/artifacts "s3://$MLFLOW_BUCKET" --endpoint-url "$MLFLOW_S3_ENDPOINT_URL"'
UPGRADE_DATABASE = "mlflow db upgrade postgresql://mlflow@postgres:5432/mlflow"

# Step 9 on Spark: docs/batch-scoring-on-spark.md. The tests put a real master and file in place of the placeholders.
SCORE_ON_SPARK = steps.SCORE_ON_SPARK
MAKE_BATCH_SPARK = "make batch-spark"
BATCH_SCORING_ON_A_CLUSTER = "spark-submit --master spark://<host>:7077 batch_scoring_spark.py <shared-path>"
SPARK_PAGE = "docs/batch-scoring-on-spark.md"

# The scoring service that follows @champion: docs/serving.md. The tests run these with free ports in place of 5000,
# 8080, 8081, 8082 and 8090, and with the admin's login on a server that asks for one.
SERVING_PAGE = "docs/serving.md"
WEBHOOK_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" > webhook.key'
WEBHOOK_SERVER = " ".join(
    [
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=$(cat webhook.key)",
        *(f"{name}={value}" for name, value in WEBHOOK_SETTINGS.items()),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --workers 2",
    ]
)
WEBHOOK_SECRET = 'export FOLLOWER_WEBHOOK_SECRET=$(python -c "import secrets; print(secrets.token_hex(32))")'
CREATE_WEBHOOK = (
    "curl -X POST http://127.0.0.1:5000/api/2.0/mlflow/webhooks -H 'Content-Type: application/json' -d"
    """ '{"name": "scoring-follower", "url": "http://127.0.0.1:8090/webhook","""
    """ "secret": "'"$FOLLOWER_WEBHOOK_SECRET"'","""
    """ "events": [{"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"},"""
    """ {"entity": "MODEL_VERSION_ALIAS", "action": "DELETED"}]}'"""
)
FOLLOW_CHAMPION = "MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python deploy/follower.py"
SCORE_THROUGH_PROXY = (
    "curl -i http://127.0.0.1:8080/invocations -H 'Content-Type: application/json'"
    """ -d '{"dataframe_split": {"columns": ["sepal length (cm)", "sepal width (cm)","""
    """ "petal length (cm)", "petal width (cm)"], "data": [[5.1, 3.5, 1.4, 0.2]]}}'"""
)
MOVE_CHAMPION = (
    "curl -X POST http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias -H 'Content-Type: application/json'"
    """ -d '{"name": "tracking-iris-lr", "alias": "champion", "version": "2"}'"""
)
SERVING_COMMANDS = (WEBHOOK_KEY, WEBHOOK_SERVER, WEBHOOK_SECRET, CREATE_WEBHOOK, FOLLOW_CHAMPION, SCORE_THROUGH_PROXY)

TEAM_PAGE = "docs/team-server.md"
TEAM_COMMANDS = (
    COPY_ENV,
    READ_ENV,
    TEAM_SERVER,
    INSTALL_TEAM_SERVER,
    CLIENT_LOGIN,
    CLIENT_RETRIES,
    CHANGE_ADMIN_PASSWORD,
    CREATE_USER,
    DELETE_USER,
    READ_NAMES,
    CREATE_BUCKET,
    CREATE_SERVER_USER,
    PUT_SERVER_POLICY,
    CREATE_SERVER_KEY,
    RENEW_CERTIFICATE,
    DUMP_TRACKING,
    DUMP_AUTH,
    BACKUP_BUCKET,
    WAIT_FOR_POSTGRES,
    RESTORE_TRACKING,
    RESTORE_AUTH,
    RESTORE_BUCKET,
    UPGRADE_DATABASE,
)
SHOWN_IN = (
    {command: TEAM_PAGE for command in (*TEAM_COMMANDS, EXAMPLE_DOMAIN)}
    | {
        PREDICT_INPUTS: "docs/under-the-hood.md",
        SCORE_ON_SPARK: SPARK_PAGE,
        BATCH_SCORING_ON_A_CLUSTER: SPARK_PAGE,
    }
    | {command: SERVING_PAGE for command in (*SERVING_COMMANDS, MOVE_CHAMPION)}
)

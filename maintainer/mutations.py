"""Break the code on purpose, one careless edit at a time, and check that the suite notices: `make mutations`.

Each case copies the repository as a fresh clone has it, makes one edit to the code a test guards, and runs
that test in the copy. The edit must make that test fail (`FAILED <its node id>`): an error in a fixture, a missing
service or another test's failure is no catch. First, every guarding test must pass on a copy with no edit (the
control). A test that still passes after its edit is a test that cannot see what it names.
maintainer/docs/testing.md shows the same list as a table ("Proof by breaking"); a test checks the two agree.

Mutation-testing tools (mutmut, cosmic-ray) change code at random and rerun the tests in-process; the guide's
steps run as subprocesses against a server, so hand-picked edits, each run against its one test, cost less.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from maintainer.checkout import fresh_copy, reader_env


@dataclass(frozen=True)
class Mutation:
    what: str  # the careless edit, in words (maintainer/docs/testing.md shows it)
    file: str
    before: str  # text that occurs once in the file
    after: str
    caught_by: str  # the pytest node id that must fail


MUTATIONS = [
    Mutation(
        "get_started.py no longer copes with a cp1252 stdout",
        "get_started.py",
        'sys.stdout.reconfigure(errors="replace")',
        "pass",
        "tests/steps/test_get_started.py::test_smoke_test_logs_its_param_and_metric",
    ),
    Mutation(
        "get_started.py starts a bare run, without its experiment",
        "get_started.py",
        "mlflow.start_run(experiment_id=experiment.experiment_id)",
        "mlflow.start_run()",
        "tests/repository/test_code.py::test_every_run_in_the_teaching_files_names_its_experiment_or_its_run",
    ),
    Mutation(
        "model_inferencing.py loads the champion, whatever it is asked for",
        "model_inferencing.py",
        "model = mlflow.pyfunc.load_model(model_uri)",
        'model = mlflow.pyfunc.load_model("models:/tracking-iris-lr@champion")',
        "tests/steps/test_model_inferencing.py::test_inference_from_the_model_folder",
    ),
    Mutation(
        "get_started.py leaves MLflow's retries on, for minutes without a server",
        "get_started.py",
        'os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")\n',
        "",
        "tests/steps/test_get_started.py::test_no_server_fails_fast_with_one_line_that_points_to_make_doctor",
    ),
    Mutation(
        "`make doctor` takes whatever answers on the port for MLflow",
        "tutorial/doctor.py",
        'if status != 200 or answer.strip() != "OK":',
        "if False:",
        "tests/tooling/test_make_doctor.py::test_another_program_on_the_port_is_named_as_such",
    ),
    Mutation(
        "`make doctor` checks the local address only, not a Codespace's forwarded one",
        "tutorial/doctor.py",
        "for host in [address] + ([forwarded] if forwarded else []):",
        "for host in [address]:",
        "tests/tooling/test_codespace.py::test_make_doctor_in_a_codespace_checks_the_forwarded_address",
    ),
    Mutation(
        "`make doctor` no longer checks the registry",
        "tutorial/doctor.py",
        'registry(uri, REPO) if answers else Finding("registry", True, f"not checked: {why_not}"),',
        'Finding("registry", True, "not checked"),',
        "tests/tooling/test_make_doctor.py::test_a_server_without_the_notebooks_model_is_told_to_run_the_notebook",
    ),
    Mutation(
        "`make doctor` passes a venv that does not match the lock",
        "tutorial/doctor.py",
        'if report["wrong"]:',
        "if False:",
        "tests/tooling/test_make_doctor.py::test_a_venv_that_does_not_match_the_lock_is_found",
    ),
    Mutation(
        "`make doctor` judges make test-latest's venv by the lock",
        "tutorial/doctor.py",
        'return venv / BUILT_FROM if (venv / BUILT_FROM).is_file() else REPO / "requirements.txt"',
        'return REPO / "requirements.txt"',
        "tests/tooling/test_make_doctor.py::test_the_latest_venv_is_judged_by_what_it_was_built_from",
    ),
    Mutation(
        "`make tutorial` starts the server without checking mlflow.db's schema",
        "tutorial/run.py",
        "        doctor.database_schema(REPO, VENV_BIN.parent),\n",
        "",
        "tests/tooling/test_make_tutorial.py::test_make_tutorial_on_an_old_database_says_how_to_upgrade_it_and_changes_nothing",
    ),
    Mutation(
        "batch_scoring.py scores with the champion, whatever --model asks for",
        "batch_scoring.py",
        "model = mlflow.pyfunc.load_model(model_uri)",
        'model = mlflow.pyfunc.load_model("models:/tracking-iris-lr@champion")',
        "tests/steps/test_batch_scoring.py::test_another_version_scores_when_asked_and_is_recorded",
    ),
    Mutation(
        "batch_scoring.py records the alias, not the version it resolved to",
        "batch_scoring.py",
        'return (f"models:/{name}/{version}" if version else model_uri), version',
        "return model_uri, version",
        "tests/steps/test_batch_scoring.py::test_scoring_the_flowers_records_which_model_scored_them",
    ),
    Mutation(
        "batch_scoring.py reads the model's inputs by position, not by name",
        "batch_scoring.py",
        "model.predict(table[inputs])",
        "model.predict(table.iloc[:, :4].set_axis(inputs, axis=1))",
        "tests/steps/test_batch_scoring.py::test_columns_in_any_order_and_an_extra_id_get_the_same_predictions",
    ),
    Mutation(
        "batch_scoring_spark.py overwrites its output in place",
        "batch_scoring_spark.py",
        """        scored.write.parquet(partial, mode="overwrite")  # the partial folder only: a killed job's, if any
        if os.path.exists(output):
            os.rename(output, previous)  # two renames, each instant: the output is whole, the old one or the new
        os.rename(partial, output)
""",
        """        scored.write.parquet(output, mode="overwrite")
""",
        "tests/steps/test_batch_scoring.py::test_100000_flowers_on_spark_by_name_and_a_failed_job_keeps_the_last_output",
    ),
    Mutation(
        "batch_scoring_spark.py records the alias, not the version it resolved to",
        "batch_scoring_spark.py",
        "model_uri, version = pin(model_uri)",
        "version = pin(model_uri)[1]",
        "tests/steps/test_batch_scoring.py::test_the_same_job_on_a_standalone_cluster[150-flowers]",
    ),
    Mutation(
        "batch_scoring.py sends a missing file or a wrong column to make doctor",
        "batch_scoring.py",
        'raise SystemExit(f"error: {err} (in {Path.cwd()})") from None',
        'raise SystemExit(f"error: {err} (`make doctor` checks)") from None',
        "tests/steps/test_batch_scoring.py::test_bad_input_gets_one_line_and_leaves_no_output",
    ),
    Mutation(
        "batch_scoring_spark.py sends a missing file to make doctor",
        "batch_scoring_spark.py",
        "except (AnalysisException, OSError, ValueError) as err:",
        "except (OSError, ValueError) as err:",
        "tests/steps/test_batch_scoring.py::test_a_missing_file_on_spark_names_it_and_its_folder",
    ),
    Mutation(
        "`make batch-spark` starts Spark without checking for Java",
        "tutorial/batch_spark.py",
        "doctor.require(doctor.java(os.environ), doctor.tracking_server(tracking_uri),",
        "doctor.require(doctor.tracking_server(tracking_uri),",
        "tests/steps/test_batch_scoring.py::test_no_java_gets_one_line_and_no_output",
    ),
    Mutation(
        "`make batch-spark` starts Spark without checking for the champion",
        "tutorial/batch_spark.py",
        "doctor.tracking_server(tracking_uri), doctor.registry(tracking_uri, REPO))",
        "doctor.tracking_server(tracking_uri))",
        "tests/tooling/test_make_doctor.py::test_make_batch_spark_without_the_notebooks_model_stops_before_spark_starts",
    ),
    Mutation(
        "the notebook links `accuracy` to the training set",
        "ml_project.ipynb",
        'dataset = test_dataset if key == \\"accuracy\\" else train_dataset',
        "dataset = train_dataset",
        "tests/steps/test_ml_project.py::test_notebook_logs_registers_and_promotes",
    ),
    Mutation(
        "the notebook passes artifact_path positionally to log_model",
        "ml_project.ipynb",
        'name=\\"iris_lr\\",',
        '\\"iris_lr\\",',
        "tests/repository/test_code.py::test_every_log_model_call_passes_the_model_and_a_name",
    ),
    Mutation(
        "`make serve` serves version 1 instead of the model asked for",
        "tutorial/serve.py",
        'command[command.index("-m") + 1] = args.model_uri',
        'command[command.index("-m") + 1] = "models:/tracking-iris-lr/1"',
        "tests/tooling/test_make_serve.py::test_the_tutorials_hint_serves_the_champion_on_the_next_port",
    ),
    Mutation(
        "`make tutorial` skips the smoke test and still announces it",
        "tutorial/run.py",
        "            elif step in runs:\n",
        "            elif step in runs and step.number != 3:\n",
        "tests/tooling/test_make_tutorial.py::test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version",
    ),
    Mutation(
        "`make tutorial` leaves the steps beside a failed one running",
        "tutorial/run.py",
        "        for run in runs.values():\n            run.stop()\n",
        "",
        "tests/tooling/test_make_tutorial.py::test_a_step_that_fails_beside_others_stops_the_tutorial_with_its_own_output",
    ),
    Mutation(
        "`make tutorial` prints the steps that run side by side as their lines come, mixed",
        "tutorial/step_runs.py",
        "    self.output.put((stream, chunk))",
        "    stream.buffer.write(chunk)\n        stream.flush()",
        "tests/tooling/test_make_tutorial.py::test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version",
    ),
    Mutation(
        "`make tutorial` prints what a step printed while it started early above the step's command",
        "tutorial/step_runs.py",
        "                    elif early_command:\n                        held.append((key.data, chunk))\n",
        "",
        "tests/tooling/test_make_tutorial.py::test_a_step_that_fails_beside_others_stops_the_tutorial_with_its_own_output",
    ),
    Mutation(
        "`make tutorial` starts the early steps (3, 6, 7, 9) with the reader's command but none of its arguments",
        "tutorial/imports_first.py",
        "    sys.argv = words[1:]\n",
        "    sys.argv = words[1:2]\n",
        "tests/tooling/test_make_tutorial.py::test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version",
    ),
    Mutation(
        "`make tutorial` starts the smoke test once the server is up, no longer importing beside the server's start",
        "tutorial/run.py",
        "            (SMOKE_TEST, ()),\n",
        "",
        "tests/tooling/test_make_tutorial.py::test_a_server_that_fails_to_start_is_reported_and_stops_the_steps_begun",
    ),
    Mutation(
        "`make tutorial` kills the server as it asks it to stop, without waiting for its shutdown",
        "tutorial/server_process.py",
        "    psutil.wait_procs(started, timeout=grace_seconds)\n",
        "",
        "tests/tooling/test_make_tutorial.py::test_a_stop_while_the_server_is_kept_stops_it",
    ),
    Mutation(
        "`make tutorial` leaves its server running when it is stopped with SIGTERM",
        "tutorial/run.py",
        "    signal.signal(signal.SIGTERM, stop_like_ctrl_c)\n",
        "",
        "tests/tooling/test_make_tutorial.py::test_a_stop_while_the_server_is_kept_stops_it",
    ),
    Mutation(
        "the notebook's wait for the server holds off Ctrl+C and a stop (nbclient's handlers wait for its loop)",
        "tutorial/notebook.py",
        "            wait_for_the_end_of_stdin()\n",
        "            sys.stdin.read()\n",
        "tests/tooling/test_make_tutorial.py::test_a_server_that_fails_to_start_is_reported_and_stops_the_steps_begun",
    ),
    Mutation(
        "the tutorial's server accepts any Host in a Codespace",
        "tutorial/run.py",
        'f"localhost:*,127.0.0.1:*,{forwarded}"',
        '"*"',
        "tests/tooling/test_codespace.py::test_in_a_codespace_the_tutorials_server_accepts_its_forwarded_address_and_nothing_wider",
    ),
    Mutation(
        "`make clean-data` deletes the database, then the artifacts, one after the other",
        "tutorial/clean_data.py",
        "    delete_together([path for path, _ in found] + journals)\n",
        "    for path, _ in found:\n        shutil.rmtree(path) if path.is_dir() else path.unlink()\n",
        "tests/tooling/test_make_clean.py::test_an_interrupted_clean_data_leaves_the_runs_whole_or_gone",
    ),
    Mutation(
        "the Makefile takes VENV from the environment again",
        "Makefile",
        "ifneq ($(origin VENV),command line)\nVENV := .venv\nendif\n",
        "VENV ?= .venv\n",
        "tests/tooling/test_make_clean.py::test_make_clean_ignores_a_venv_variable_from_the_environment",
    ),
    Mutation(
        "requirements.in bumps mlflow without `make lock`",
        "requirements.in",
        "mlflow==3.17.2",
        "mlflow==3.17.3",
        "tests/repository/test_requirements.py::test_lock_files_are_made_by_make_lock_from_the_inputs",
    ),
    Mutation(
        "a password written straight into the compose file",
        "deploy/docker-compose.yml",
        "PGPASSWORD: ${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD in .env}",
        "PGPASSWORD: hunter2hunter2",
        "tests/team/test_deploy_files.py::test_every_secret_like_value_in_compose_is_a_reference_to_env",
    ),
    Mutation(
        "`.env.example` ships a usable admin password again",
        "deploy/.env.example",
        "MLFLOW_AUTH_ADMIN_PASSWORD=\n",
        "MLFLOW_AUTH_ADMIN_PASSWORD=change-me-three\n",
        "tests/team/test_deploy_files.py::test_env_example_ships_no_usable_secret_and_compose_refuses_blanks",
    ),
    Mutation(
        "the proxy sends MLflow its own address as the Host",
        "deploy/nginx.conf.template",
        "proxy_set_header Host $host;",
        "proxy_set_header Host mlflow:5000;",
        "tests/team/test_team_server.py::test_the_documented_address_reaches_the_server_and_no_other_does",
    ),
    Mutation(
        "the compose file names the example domain again",
        "deploy/docker-compose.yml",
        "- ${MLFLOW_DOMAIN:?set MLFLOW_DOMAIN in .env},localhost:5000,127.0.0.1:5000",
        "- mlflow.example.com,localhost:5000,127.0.0.1:5000",
        "tests/team/test_deploy_files.py::test_compose_server_command_is_the_readme_command",
    ),
    Mutation(
        "certbot's deploy hook copies the certificate but does not reload nginx",
        "deploy/renew-certificate.sh",
        '${RELOAD_PROXY:-docker compose --project-directory "$deploy" exec -T proxy nginx -s reload}',
        "true",
        "tests/team/test_team_server.py::test_a_renewed_certificate_is_served_after_the_deploy_hook",
    ),
    Mutation(
        "git no longer ignores the private key's folder",
        ".gitignore",
        "deploy/certs/\n",
        "",
        "tests/team/test_deploy_files.py::test_every_key_dump_and_env_the_page_writes_is_ignored_by_git",
    ),
    Mutation(
        "the team server lets every user edit what others created",
        "deploy/basic_auth.ini",
        "default_permission = READ",
        "default_permission = EDIT",
        "tests/team/test_team_server.py::test_a_reader_can_read_but_not_write_the_admins_experiment",
    ),
    Mutation(
        "a parallel run leaves the workers' shared session server running",
        "tests/conftest.py",
        'server_process.stop_group(json.loads(started.read_text())["process_group"])',
        "pass",
        "tests/tooling/test_make_test.py::test_the_workers_session_server_stops_when_they_end",
    ),
    Mutation(
        "the scoring service's follower switches nginx to a new version before its gate",
        "deploy/follower.py",
        "            served = idle.predict(",
        "            self.proxy.route_to(idle)\n            served = idle.predict(",
        "tests/team/test_scoring_follower.py::"
        "test_a_version_that_cannot_load_or_fails_the_gate_never_takes_traffic_and_is_recorded[fails-the-gate]",
    ),
    Mutation(
        "the follower takes a webhook without a valid signature",
        "deploy/follower.py",
        '            return 401, "bad signature"',
        "            pass",
        "tests/team/test_scoring_follower.py::test_a_webhook_that_is_unsigned_stale_or_replayed_is_refused_and_changes_nothing",
    ),
    Mutation(
        "`make tutorial` skips step 9 and still numbers it",
        "tutorial/run.py",
        "        if step is not TRACKING_SERVER and not step.not_run_because\n",
        "        if step is not TRACKING_SERVER and not step.not_run_because and step.number != 9\n",
        "tests/tooling/test_make_tutorial.py::test_tutorial_runs_end_to_end_and_a_second_run_repeats_no_version",
    ),
    Mutation(
        "`make doctor` no longer checks Java",
        "tutorial/doctor.py",
        "java(env) if has_pyspark(venv) else",
        "java(env) if False else",
        "tests/tooling/test_make_doctor.py::test_a_java_home_that_leads_nowhere_is_the_one_problem",
    ),
    Mutation(
        "batch_scoring.py records the champion's model, whatever version scored",
        "batch_scoring.py",
        "model.metadata.model_id, len(table), output",
        'mlflow.pyfunc.load_model("models:/tracking-iris-lr@champion").metadata.model_id, len(table), output',
        "tests/steps/test_batch_scoring.py::test_another_version_scores_when_asked_and_is_recorded",
    ),
    Mutation(
        "batch_scoring.py leaves MLflow's retries on, for minutes without a server",
        "batch_scoring.py",
        'os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once if no server answers\n',
        "",
        "tests/steps/test_batch_scoring.py::test_no_server_fails_fast_with_one_line_that_points_to_make_doctor",
    ),
    Mutation(
        "`make tutorial` goes on to the steps when its server fails to start",
        "tutorial/run.py",
        'doctor.exit_with_error(f"{err} (`make doctor` looks for the cause)")',
        'print(f"{err} (`make doctor` looks for the cause)")\n        return',
        "tests/tooling/test_make_tutorial.py::test_a_server_that_fails_to_start_is_reported_and_stops_the_steps_begun",
    ),
    Mutation(
        "`make serve` hands a busy port to `mlflow models serve`",
        "tutorial/serve.py",
        "    doctor.require(doctor.serving_port(args.port, tracking_port, serving_already=False))\n",
        "",
        "tests/tooling/test_make_serve.py::test_make_serve_says_what_is_missing_in_one_line[busy-serving-port]",
    ),
    Mutation(
        "`make doctor` calls an untrusted certificate a missing server",
        "tutorial/doctor.py",
        "        if isinstance(reason, ssl.SSLCertVerificationError):",
        "        if False:",
        "tests/tooling/test_make_doctor.py::test_a_server_whose_certificate_is_not_trusted_gets_the_setting",
    ),
    Mutation(
        "`make clean-data` lets Ctrl+C in between its renames",
        "tutorial/clean_data.py",
        "    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)\n",
        "",
        "tests/tooling/test_make_clean.py::test_an_interrupted_clean_data_leaves_the_runs_whole_or_gone[between-the-renames]",
    ),
    Mutation(
        "batch_scoring.py writes its output in place, not beside it",
        "batch_scoring.py",
        "to_parquet(partial, index=False)",
        "to_parquet(output, index=False)",
        "tests/steps/test_batch_scoring.py::test_a_write_that_fails_half_way_leaves_the_last_output_whole",
    ),
    Mutation(
        "make bench runs without hyperfine and fails with a traceback",
        "maintainer/hyperfine.py",
        'if shutil.which("hyperfine") is None:',
        "if False:",
        "tests/tooling/test_make_bench.py::test_without_hyperfine_the_bench_says_what_to_install",
    ),
]


def apply(mutation: Mutation, checkout: Path) -> None:
    path = checkout / mutation.file
    if not path.is_file():
        raise SystemExit(f"error: {mutation.file} does not exist: update MUTATIONS")
    text = path.read_text()
    if text.count(mutation.before) != 1:
        raise SystemExit(f"error: {mutation.file} no longer holds {mutation.before!r} once: update MUTATIONS")
    path.write_text(text.replace(mutation.before, mutation.after))


def clone_like_copy(folder: Path) -> Path:
    """A fresh copy, in a git repository of its own as a clone is: the tests that ask git what it ignores need one."""
    checkout = fresh_copy(folder)
    subprocess.run(["git", "init", "--quiet"], cwd=checkout, check=True)
    return checkout


def run_tests(node_ids: list[str], checkout: Path) -> subprocess.CompletedProcess:
    """The tests in a copy, as CI runs them (a missing service fails, not skips), with a line per failure and error."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *node_ids]
    env = reader_env(CI="true", PYTEST_ADDOPTS=None)
    return subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)


def check_the_tests_pass_unmutated(cases: list[Mutation], folder: Path) -> None:
    """The control: every guarding test passes on a copy with no edit, or a failure after an edit proves nothing."""
    node_ids = sorted({mutation.caught_by for mutation in cases})
    result = run_tests(node_ids, clone_like_copy(folder / "unmutated"))
    if result.returncode != 0:
        failing = [line for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
        raise SystemExit("error: guarding tests fail with no edit made; fix them first:\n" + "\n".join(failing))


def caught(mutation: Mutation, folder: Path) -> tuple[bool, bool, float]:
    """Run the guarding test in a mutated fresh copy: (it failed, anything failed or errored, seconds)."""
    checkout = clone_like_copy(folder / "mlflow-starter")
    apply(mutation, checkout)
    started = time.monotonic()
    result = run_tests([mutation.caught_by], checkout)
    # Only the named test's own failure is a catch: not an error in a fixture (a server that did not start, a
    # missing service), not "interrupted" or "no tests collected".
    failed = any(line.startswith(f"FAILED {mutation.caught_by}") for line in result.stdout.splitlines())
    return failed, result.returncode != 0, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose description contains this text")
    args = parser.parse_args()
    cases = [m for m in MUTATIONS if not args.only or args.only in m.what]
    with tempfile.TemporaryDirectory() as folder:
        check_the_tests_pass_unmutated(cases, Path(folder))
    survivors, any_failure = [], 0
    print("| The careless edit | The test that must fail | Failed |\n|---|---|---|", flush=True)
    for mutation in cases:
        with tempfile.TemporaryDirectory() as folder:
            was_caught, something_failed, seconds = caught(mutation, Path(folder))
        print(f"| {mutation.what} | `{mutation.caught_by}` | {'yes' if was_caught else 'NO'} ({seconds:.0f} s) |")
        any_failure += something_failed
        if not was_caught:
            survivors.append(mutation.what)
    print(
        f"\n{len(cases) - len(survivors)} of {len(cases)} edits failed their named test "
        f"({any_failure} of {len(cases)} if any failure or error counted, as before the named-test rule)"
    )
    if survivors:
        raise SystemExit(f"error: {len(survivors)} edit(s) passed their test: {'; '.join(survivors)}")


if __name__ == "__main__":
    main()

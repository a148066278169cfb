"""The Databricks bundle: every job loads in the databricks-bundles job models, every
wheel entry point it names exists in the package, and the nightly task chain is the
order `memberscore pipeline` runs in-process."""

from __future__ import annotations

import itertools
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RESOURCES = sorted((REPO / "resources").glob("*.yml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _jobs() -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    for path in RESOURCES:
        for name, job in _load(path)["resources"].get("jobs", {}).items():
            assert name not in jobs, f"job {name} defined twice"
            jobs[name] = job
    return jobs


def test_one_resource_per_resource_file() -> None:
    assert RESOURCES, "no resources/*.yml"
    for path in RESOURCES:
        resources = _load(path)["resources"]
        assert [len(r) for r in resources.values()] == [1], path.name
    assert set(_jobs()) == {"memberscore_nightly", "memberscore_backfill",
                            "memberscore_training"}
    assert set(_load(REPO / "resources" / "memberscore_api.yml")["resources"]) == {"apps"}


def _app() -> dict[str, Any]:
    app: dict[str, Any] = _load(REPO / "resources" / "memberscore_api.yml")["resources"][
        "apps"]["memberscore_api"]
    return app


def test_the_api_app_loads_in_databricks_bundles_models_and_runs_the_api_command() -> None:
    from databricks.bundles.apps import App

    from memberscore.cli import build_parser

    app = App.from_dict(_app())  # type: ignore[arg-type]  # strict: unknown fields raise
    assert app.as_dict()["name"] == "memberscore-api-${bundle.target}"
    command = _app()["config"]["command"]
    assert command[:3] == ["memberscore", "--env", "${bundle.target}"]
    scripts = {ep.name for ep in metadata.distribution("memberscore").entry_points
               if ep.group == "console_scripts"}
    assert command[0] in scripts
    parsed = build_parser().parse_args(["--env", "prod", *command[3:]])
    assert parsed.command == "api"


def test_the_api_app_gets_its_secrets_from_the_scope_and_conf_reads_them() -> None:
    """Every env var of the app comes from a secret resource of the target's scope,
    and each is a ${VAR} conf reads in every target (the token, the key pair)."""
    from memberscore.config import load_settings

    app = _app()
    secrets = {r["name"]: r["secret"] for r in app["resources"]}
    assert all(s["scope"] == "${var.snowflake_secret_scope}" and s["permission"] == "READ"
               for s in secrets.values())
    env = {e["name"]: e["value_from"] for e in app["config"]["env"]}
    assert set(env.values()) == set(secrets)
    for target in _load(REPO / "databricks.yml")["targets"]:
        settings = load_settings(target)
        references = {s.reference for s in settings.api.tokens}
        sf = settings.snowflake
        references |= {s.reference for s in (sf.private_key, sf.private_key_passphrase) if s}
        assert references == {f"${{{name}}}" for name in env}, target
        assert (settings.api.host, settings.api.port) == ("0.0.0.0", 8000), target


def test_the_api_app_installs_the_wheel_the_bundle_builds() -> None:
    """app/requirements.txt names the wheel of setup.py's version (copied into
    app/wheels/ by the artifact build, and uploaded although git ignores it) and
    pins pyspark as the constraints do."""
    bundle = _load(REPO / "databricks.yml")
    build = bundle["artifacts"]["memberscore_wheel"]["build"]
    assert build.endswith("cp dist/memberscore-*.whl app/wheels/")
    assert bundle["sync"]["include"] == ["app/wheels/*.whl"]
    assert _app()["source_code_path"] == "../app"
    lines = [line for line in (REPO / "app" / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    version = metadata.version("memberscore")
    constraints = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    pyspark = next(line for line in constraints if line.startswith("pyspark=="))
    assert lines == [pyspark, f"./wheels/memberscore-{version}-py3-none-any.whl"]


@pytest.mark.parametrize("name", ["memberscore_nightly", "memberscore_backfill",
                                  "memberscore_training"])
def test_job_loads_in_databricks_bundles_models(name: str) -> None:
    from databricks.bundles.jobs import Job

    job = Job.from_dict(_jobs()[name])  # strict: unknown fields and bad types raise
    assert job.as_dict()["name"] == f"memberscore-{name.split('_')[1]}-${{bundle.target}}"


def test_every_wheel_entry_point_exists_in_the_package() -> None:
    scripts = {ep.name: ep for ep in metadata.distribution("memberscore").entry_points
               if ep.group == "console_scripts"}
    for job in _jobs().values():
        for task in job["tasks"]:
            wheel_task = task["python_wheel_task"]
            assert wheel_task["package_name"] == "memberscore"
            entry = wheel_task["entry_point"]
            assert entry in scripts, f"{entry} is not a console script of memberscore"
            assert callable(scripts[entry].load())
            assert task["libraries"] == [{"whl": "../dist/*.whl"}]


def test_nightly_chain_matches_the_pipeline_order() -> None:
    from memberscore.config import load_settings
    from memberscore.jobs.pipeline import PUBLISH_DRIFT, STEPS

    tasks = _jobs()["memberscore_nightly"]["tasks"]
    order = [t["task_key"] for t in tasks]
    assert order == [*STEPS, PUBLISH_DRIFT]
    # the drift publish runs after monitor whatever monitor's verdict, in every target
    # whose conf publishes drift_metrics (the pipeline runs it on the same rule)
    assert tasks[-1]["run_if"] == "ALL_DONE"
    assert tasks[-1]["python_wheel_task"]["entry_point"] == "memberscore-publish"
    assert all("run_if" not in t for t in tasks[:-1])
    for target in _load(REPO / "databricks.yml")["targets"]:
        assert "drift_metrics" in load_settings(target).snowflake.published_tables
    for previous, task in itertools.pairwise(tasks):
        assert task["depends_on"] == [{"task_key": previous["task_key"]}]
    assert "depends_on" not in tasks[0]


def test_nightly_tasks_pass_the_options_the_pipeline_passes() -> None:
    """`memberscore pipeline` runs what the nightly job runs: same commands, same
    extra options."""
    from memberscore.jobs.pipeline import PUBLISH_DRIFT, STEP_COMMANDS, STEP_OPTIONS, STEPS

    for task in _jobs()["memberscore_nightly"]["tasks"]:
        step = task["task_key"]
        args = task["python_wheel_task"]["parameters"]
        extra = args[args.index("{{job.parameters.run_date}}") + 1:]
        assert extra == list(STEP_OPTIONS.get(step, ())), step
        command = STEP_COMMANDS.get(step, step)
        assert task["python_wheel_task"]["entry_point"] == f"memberscore-{command}", step
    assert set(STEP_OPTIONS) <= {*STEPS, PUBLISH_DRIFT}


def test_tasks_share_one_job_cluster_and_pass_the_run_date() -> None:
    for job in _jobs().values():
        clusters = [c["job_cluster_key"] for c in job["job_clusters"]]
        assert clusters == ["memberscore"]
        params = {p["name"] for p in job["parameters"]}
        for task in job["tasks"]:
            assert task["job_cluster_key"] == "memberscore"
            assert task["timeout_seconds"] > 0
            args = task["python_wheel_task"]["parameters"]
            assert args[:2] == ["--env", "${bundle.target}"]
            used = set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", " ".join(args)))
            assert used and used <= params


def test_variables_are_declared_and_set_per_target() -> None:
    bundle = _load(REPO / "databricks.yml")
    declared = set(bundle["variables"])
    text = "\n".join(p.read_text() for p in [REPO / "databricks.yml", *RESOURCES])
    used = set(re.findall(r"\$\{var\.(\w+)\}", text))
    assert used <= declared, used - declared
    required = {n for n, v in bundle["variables"].items() if "default" not in v}
    assert set(bundle["targets"]) == {"dev", "staging", "prod"}
    for name, target in bundle["targets"].items():
        assert required <= set(target.get("variables", {})), (name, required)
    assert bundle["targets"]["dev"]["mode"] == "development"
    for name in ("staging", "prod"):
        assert bundle["targets"][name]["mode"] == "production"
        assert "service_principal_name" in bundle["targets"][name]["run_as"]


def test_every_target_runs_its_own_conf_environment() -> None:
    """What the jobs read (catalog, schema, model names) has one home, conf/<target>.yml
    in the wheel: every task passes --env <target>, and no job cluster overrides conf
    through MEMBERSCORE__ environment variables."""
    from memberscore.config import load_settings

    bundle = _load(REPO / "databricks.yml")
    for name in bundle["targets"]:
        settings = load_settings(name)
        assert settings.lake.backend == "delta-spark" and settings.lake.catalog, name
        assert settings.models.names, name
    for job in _jobs().values():
        for cluster in job.get("job_clusters", []):
            env = cluster["new_cluster"].get("spark_env_vars") or {}
            assert not [k for k in env if k.startswith("MEMBERSCORE__")], job["name"]


def test_no_step_that_can_fail_on_data_quality_is_retried() -> None:
    """A scheduler retry cannot tell a failed expectation, a refused day or a drift
    alert from a transient failure: every nightly step can end in one of those
    (ingest: too many quarantined rows; features, validate, score: a critical
    expectation; score, publish: a day not validated; monitor: an alert), so none
    is retried by the job, and no retry interval is left configured."""
    for task in _jobs()["memberscore_nightly"]["tasks"]:
        assert task["max_retries"] == 0, task["task_key"]
        assert "min_retry_interval_millis" not in task, task["task_key"]
        assert "retry_on_timeout" not in task, task["task_key"]


# The commands that send the "day published" event (docs/events.md), and the Kafka
# SASL credentials their cluster needs: env var (as conf/<target>.yml refers to it) ->
# key in the target's secret scope.
EVENT_SENDERS = {"memberscore-publish", "memberscore-events"}
KAFKA_SECRETS = {"KAFKA_SASL_USERNAME": "kafka-sasl-username",
                 "KAFKA_SASL_PASSWORD": "kafka-sasl-password"}


def test_the_clusters_that_send_events_get_the_kafka_credentials_conf_reads() -> None:
    """Every job cluster that runs publish or events passes the two Kafka secrets from
    the target's scope (Databricks resolves and redacts them), as the variables every
    target's conf reads; no other cluster gets them."""
    from memberscore.config import load_settings

    expected = {name: f"{{{{secrets/${{var.snowflake_secret_scope}}/{key}}}}}"
                for name, key in KAFKA_SECRETS.items()}
    senders = []
    for job in _jobs().values():
        sending = {t["job_cluster_key"] for t in job["tasks"]
                   if t["python_wheel_task"]["entry_point"] in EVENT_SENDERS}
        for cluster in job["job_clusters"]:
            env = cluster["new_cluster"].get("spark_env_vars") or {}
            kafka = {k: v for k, v in env.items() if k.startswith("KAFKA_")}
            if cluster["job_cluster_key"] in sending:
                senders.append(job["name"])
                assert kafka == expected, job["name"]
            else:
                assert kafka == {}, job["name"]
    assert senders == ["memberscore-nightly-${bundle.target}"]
    for target in _load(REPO / "databricks.yml")["targets"]:
        events = load_settings(target).events
        assert events.enabled and events.security_protocol == "SASL_SSL", target
        assert events.sasl_username is not None and events.sasl_password is not None
        assert {events.sasl_username.reference, events.sasl_password.reference} == {
            f"${{{name}}}" for name in KAFKA_SECRETS}, target

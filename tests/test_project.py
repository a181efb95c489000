"""Project-level checks: the README's generated tables, the entrypoint file, the Dockerfile lint,
and the hyperparameter declarations themselves."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from byoa.algorithms import ALGORITHMS
from byoa.errors import ConfigError
from byoa.hyperparameters import AnyOf, Boolean, Integer, ListOf, Options, Param, Real, decode, parse


def test_readme_hyperparameter_tables_are_generated_from_the_declarations():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_readme.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text()
    for name, cls in ALGORITHMS.items():
        assert f"#### `{name}`" in readme
        for p in cls.params:
            assert f"| `{p.name}` |" in readme


@pytest.mark.parametrize("entrypoint", ["train", "serve"])
def test_entrypoints_are_executable_python3_scripts_with_lf_endings(entrypoint):
    path = ROOT / "container" / entrypoint
    raw = path.read_bytes()
    assert raw.startswith(b"#!/usr/bin/env python3\n")
    assert b"\r\n" not in raw
    assert path.stat().st_mode & 0o111


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


PARAMS = [
    Param("n", Integer(1, 10)),
    Param("rate", Real(0, 1, low_open=True), 0.5),
    Param("mode", Options(("a", "b"), unsupported=("c",)), "a"),
    Param("flag", Boolean(), True),
    Param("size", AnyOf((Options(("auto",)), Integer(1))), "auto"),
    Param("names", ListOf(Options(("msd", "ssd"))), ["msd"]),
    Param("old", Integer(0), 1, ignored=True),
]


def test_parse_types_defaults_and_json_encoded_values():
    parsed = parse(PARAMS, {"n": "3", "rate": "0.25", "mode": '"B"', "flag": "False", "size": "12", "names": '["msd", "ssd"]',
                            "old": "5", "_tuning_objective_metric": "x", "sagemaker_program": "y"}, "algo")
    assert parsed.values == {"n": 3, "rate": 0.25, "mode": "b", "flag": False, "size": 12, "names": ["msd", "ssd"], "old": 5}
    assert parsed.ignored == {"old": 5}
    assert set(parsed.platform) == {"_tuning_objective_metric", "sagemaker_program"}
    assert parse(PARAMS, {"n": "10"}, "algo").values["size"] == "auto"
    assert decode('"auto"') == "auto" and decode("auto") == "auto" and decode("[1]") == [1]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, "missing required hyperparameter for algo: n"),
        ({"n": "11"}, r"invalid value for hyperparameter n: '11'; allowed: integer in [1, 10]"),
        ({"n": "1.5"}, "invalid value for hyperparameter n"),
        ({"n": "1", "rate": "0"}, r"allowed: number in (0, 1]"),
        ({"n": "1", "rate": "nan"}, "invalid value for hyperparameter rate"),
        ({"n": "1", "mode": "c"}, "mode=c is not supported by this image; supported: a, b"),
        ({"n": "1", "flag": "maybe"}, "allowed: true or false"),
        ({"n": "1", "names": "[]"}, "allowed: a non-empty list"),
        ({"n": "1", "nn": "1"}, "unknown hyperparameter 'nn' for algo; known: flag, mode, n, names, old, rate, size"),
    ],
)
def test_parse_errors_name_the_hyperparameter_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError) as err:
        parse(PARAMS, raw, "algo")
    assert message in str(err.value)


def test_every_algorithm_declares_seed_and_unique_names():
    for name, cls in ALGORITHMS.items():
        names = [p.name for p in cls.params]
        assert len(names) == len(set(names)), name
        assert "seed" in names

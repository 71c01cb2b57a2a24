"""The runtime's platform (Python minor, Powertools) is read from one place, and every consumer agrees with it."""

import json
import re
from pathlib import Path

from tests.infra.conftest import function_by_handler

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = json.loads((ROOT / "runtime" / "platform.json").read_text())


def test_lambda_runtime_and_layer_follow_platform_json(variant):
    t = variant("lambda-sqs").service_json
    layer_name = f"AWSLambdaPowertoolsPythonV3-python{PLATFORM['python'].replace('.', '')}-arm64"
    for handler in ("orders.entrypoints.api.handler", "orders.entrypoints.worker_lambda.handler"):
        fn = function_by_handler(t, handler)
        assert fn["Runtime"] == f"python{PLATFORM['python']}"
        [layer] = fn["Layers"]
        assert f"{layer_name}:{PLATFORM['powertools_layer_version']}" in json.dumps(layer)


def test_worker_image_builds_on_the_same_python(variant):
    synth = variant("ecs")
    manifest = json.loads((synth.outdir / f"{synth.service_stack.stack_name}.assets.json").read_text())
    [image] = manifest["dockerImages"].values()
    assert image["source"]["dockerBuildArgs"] == {"PYTHON_VERSION": PLATFORM["python"]}
    dockerfile = (ROOT / "runtime" / "Dockerfile").read_text()
    assert f"ARG PYTHON_VERSION={PLATFORM['python']}\n" in dockerfile  # the default for a plain `docker build`
    assert "FROM public.ecr.aws/docker/library/python:${PYTHON_VERSION}-slim" in dockerfile


def test_pip_pins_the_powertools_release_the_layer_is_built_from():
    pins = re.findall(r"^aws-lambda-powertools==([\w.]+)$", (ROOT / "runtime" / "requirements.txt").read_text(), re.M)
    assert pins == [PLATFORM["powertools"]]
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert context["powertoolsLayerVersion"] == PLATFORM["powertools_layer_version"]

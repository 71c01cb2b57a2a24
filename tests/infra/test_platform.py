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


def _evaluate(value, conditions, pseudo):
    """CloudFormation's evaluation of the intrinsics the layer ARN uses (Join, Ref, If, Equals)."""
    if isinstance(value, str):
        return value
    [(fn, arg)] = value.items()
    if fn == "Ref":
        return pseudo[arg]
    if fn == "Fn::Join":
        return arg[0].join(_evaluate(v, conditions, pseudo) for v in arg[1])
    if fn == "Fn::If":
        name, yes, no = arg
        left, right = conditions[name]["Fn::Equals"]
        return _evaluate(yes if _evaluate(left, conditions, pseudo) == right else no, conditions, pseudo)
    raise AssertionError(f"unexpected intrinsic {fn}")


def test_official_layer_publisher_follows_partition_and_region(variant):
    t = variant("lambda-sqs").service_json
    [layer] = function_by_handler(t, "orders.entrypoints.api.handler")["Layers"]
    expected = {  # Powertools "Install" page: publisher account per partition / region
        ("aws", "eu-west-1"): "017000801446",
        ("aws", "ap-southeast-7"): "017000801446",
        ("aws-cn", "cn-north-1"): "498634801083",
        ("aws-us-gov", "us-gov-east-1"): "165087284144",
        ("aws-us-gov", "us-gov-west-1"): "165093116878",
    }
    for (partition, region), account in expected.items():
        arn = _evaluate(layer, t["Conditions"], {"AWS::Partition": partition, "AWS::Region": region})
        assert arn.startswith(f"arn:{partition}:lambda:{region}:{account}:layer:AWSLambdaPowertoolsPythonV3-"), arn
    assert "Fn::FindInMap" not in json.dumps(layer)  # no lookup that can fail in an unlisted region

"""Bootstrap and deploy the real stacks into the emulator with the real CDK CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacks import outputs

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"
QUALIFIER = "hnb659fds"
PLATFORM = json.loads((ROOT / "runtime" / "platform.json").read_text())
LAYER_NAME = f"AWSLambdaPowertoolsPythonV3-python{PLATFORM['python'].replace('.', '')}-arm64"


class DeployError(RuntimeError):
    """The CLI failed; the message is its last lines."""


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment for every process that talks to the emulator (never real AWS)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@dataclass
class Deployment:
    outputs: dict[str, dict[str, str]]
    templates: dict[str, dict[str, Any]]
    layer_arn: str = ""

    def fingerprint(self) -> str:
        """Changes whenever any stack's template does (moto keeps no LastUpdatedTime)."""
        return hashlib.sha256(json.dumps(self.templates, sort_keys=True).encode()).hexdigest()

    def output(self, stack_suffix: str, key: str) -> str:
        for name, values in self.outputs.items():
            if name.endswith(stack_suffix) and key in values:
                return values[key]
        raise KeyError(f"{stack_suffix} output {key}")

    def template(self, stack_suffix: str) -> dict[str, Any]:
        return next(t for name, t in self.templates.items() if name.endswith(stack_suffix))

    def data(self, key: str) -> str:
        """A data stack output (``stacks.outputs``)."""
        return self.output(outputs.DATA_STACK, key)

    def service(self, key: str) -> str:
        """A service stack output; KeyError if this variant has none of that name."""
        return self.output(outputs.SERVICE_STACK, key)

    @property
    def compute(self) -> str:
        """The deployed variant: ecs, lambda-sqs, lambda-sqs-provisioned or lambda-sns."""
        return self.service(outputs.COMPUTE)

    def service_template(self) -> dict[str, Any]:
        return self.template(outputs.SERVICE_STACK)


def _clients(endpoint: str) -> Any:
    import boto3

    kw = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "sandbox",
        "aws_secret_access_key": "sandbox",
    }
    return lambda service: boto3.client(service, **kw)  # type: ignore[call-overload]


def publish_powertools_layer(endpoint: str) -> str:
    """The official layer lives in another account; publish the installed Powertools under its name."""
    import aws_lambda_powertools

    package = Path(aws_lambda_powertools.__file__).parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*.py")):
            zf.write(path, f"python/aws_lambda_powertools/{path.relative_to(package)}")
    client = _clients(endpoint)("lambda")
    resp = client.publish_layer_version(
        LayerName=LAYER_NAME, Content={"ZipFile": buf.getvalue()}, CompatibleRuntimes=[f"python{PLATFORM['python']}"]
    )
    return str(resp["LayerVersionArn"])


def seed_image_assets(endpoint: str, assembly: Path) -> int:
    """Put a manifest tagged with each image asset's hash into the bootstrap repository.

    The CLI then finds the image "already published" and never builds it or
    contacts a registry; the sandbox runs the worker code as local processes.
    """
    ecr = _clients(endpoint)("ecr")
    repo = f"cdk-{QUALIFIER}-container-assets-{ACCOUNT}-{REGION}"
    seeded = 0
    for manifest in assembly.glob("*.assets.json"):
        for asset_id, asset in json.loads(manifest.read_text()).get("dockerImages", {}).items():
            for dest in asset["destinations"].values():
                tag = dest["imageTag"]
                body = json.dumps(
                    {
                        "schemaVersion": 2,
                        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "config": {
                            "mediaType": "application/vnd.docker.container.image.v1+json",
                            "size": 0,
                            "digest": "sha256:" + hashlib.sha256(asset_id.encode()).hexdigest(),
                        },
                        "layers": [],
                    }
                )
                try:
                    ecr.put_image(repositoryName=repo, imageManifest=body, imageTag=tag)
                except ecr.exceptions.ImageAlreadyExistsException:
                    continue  # seeded by an earlier deploy of the same code
                seeded += 1
    return seeded


def _cdk(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"\n$ npx cdk {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            ["npx", "--no-install", "cdk", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        tail = [line for line in log.read_text().splitlines() if line.strip() and "npm warn" not in line][-6:]
        raise DeployError(f"cdk {args[0]} failed: " + " | ".join(tail))


def _cli_env(endpoint: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **aws_env(endpoint),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }


def deploy(endpoint: str, context: dict[str, str], workdir: Path, layer_arn: str | None = None) -> Deployment:
    """(the layer, bootstrap beside synth ->) seed image assets -> deploy; returns outputs and templates.

    ``layer_arn``: the stack is already bootstrapped (a live stack being updated); skip that step.
    """
    env = _cli_env(endpoint)
    log = workdir / "cdk.log"
    assembly = workdir / "cdk.out"
    layer = layer_arn or publish_powertools_layer(endpoint)
    ctx_args = [
        arg for key, value in {**context, "powertoolsLayerArn": layer}.items() for arg in ("-c", f"{key}={value}")
    ]
    synth = ["synth", "--quiet", "--no-notices", "--output", str(assembly), *ctx_args]
    if layer_arn is None:
        # Bootstrap (the CLI against the emulator) and synth (the app, no AWS calls) need nothing of each
        # other: on two cores they run side by side.
        with ThreadPoolExecutor(max_workers=2) as pool:
            steps = [
                pool.submit(
                    _cdk,
                    [
                        "bootstrap",
                        f"aws://{ACCOUNT}/{REGION}",
                        "--no-notices",
                        "--output",
                        str(workdir / "bootstrap.out"),
                    ],
                    env,
                    workdir / "bootstrap.log",
                ),
                pool.submit(_cdk, synth, env, log),
            ]
            for step in steps:
                step.result()
    else:
        _cdk(synth, env, log)
    seed_image_assets(endpoint, assembly)
    outputs_file = workdir / "outputs.json"
    _cdk(
        [
            "deploy",
            "--all",
            "--require-approval",
            "never",
            "--no-notices",
            "--method=direct",
            "--app",
            str(assembly),
            "--outputs-file",
            str(outputs_file),
            # moto cannot update a stack that leaves the parameter at its previous value: name it every time.
            "--parameters",
            f"BootstrapVersion=/cdk-bootstrap/{QUALIFIER}/version",
        ],
        env,
        log,
    )
    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text()) for p in assembly.glob("*.template.json")
    }
    return Deployment(outputs=json.loads(outputs_file.read_text()), templates=templates, layer_arn=layer)


def live_deployment(cloudformation: Any) -> Deployment | None:
    """The stacks as CloudFormation holds them now, whoever deployed them; None while one is changing."""
    outputs: dict[str, dict[str, str]] = {}
    templates: dict[str, dict[str, Any]] = {}
    for stack in cloudformation.describe_stacks()["Stacks"]:
        name = stack["StackName"]
        if name == "CDKToolkit":
            continue
        if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
            return None
        outputs[name] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        body = cloudformation.get_template(StackName=name)["TemplateBody"]
        templates[name] = json.loads(body) if isinstance(body, str) else dict(body)
        literal = {k: o["Value"] for k, o in templates[name].get("Outputs", {}).items() if isinstance(o["Value"], str)}
        if any(outputs[name].get(k) != v for k, v in literal.items()):
            return None  # the template is new, the outputs are not yet: an update is under way
    return Deployment(outputs=outputs, templates=templates)


def wait_for(endpoint: str, timeout_s: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise DeployError(f"emulator at {endpoint} did not answer within {timeout_s:.0f} s")

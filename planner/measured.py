"""The model held to real AWS as others measured it: each published experiment, the model's prediction of the
same experiment (computed here from ``planner.aws``, never from the measurement) and the difference.

Only measurements with a stated setup and a number are used; where the model disagrees by more than 25% the
row says why, with its source. Read Dec 2026 from the pages cited.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner import aws

TOLERANCE = 0.25


@dataclass(frozen=True)
class Measurement:
    rule: str
    experiment: str
    measured: float
    unit: str
    predicted: float
    source: str
    why_off: str = ""  # the explanation when the model is more than TOLERANCE away

    @property
    def difference(self) -> float:
        return (self.predicted - self.measured) / self.measured

    @property
    def holds(self) -> bool:
        return abs(self.difference) <= TOLERANCE


def backlog_drain_s(messages: int, seconds_per_message: float, *, per_minute: float, ceiling: int) -> float:
    """Seconds an SQS mapping takes to work off ``messages`` already queued, one per invoke, growing as
    ``aws.lambda_sqs_concurrency`` says (with ``per_minute`` as the ramp, for experiments run before the
    2023 change)."""
    done, t, step = 0.0, 0.0, 0.1
    while done < messages:
        concurrency = aws.lambda_sqs_concurrency(t, ceiling, per_minute)
        done += concurrency * step / seconds_per_message
        t += step
    return t


def measurements() -> list[Measurement]:
    return [
        Measurement(
            rule="SQS event source mapping ramp (5, then +N a minute)",
            experiment="100,000 messages queued, batch 1, a 500 ms handler (Node.js, 128 MB), 2018: the ramp "
            "was +60 a minute then",
            measured=5.5 * 60,
            unit="s to drain",
            predicted=backlog_drain_s(100_000, 0.5, per_minute=60, ceiling=aws.LAMBDA_SQS_MAX_CONCURRENCY),
            source='Mikhail Shilkov, "From 0 to 1000 Instances: How Serverless Providers Scale Queue Processing" '
            "(mikhail.io, Nov 2018)",
        ),
        Measurement(
            rule="SQS event source mapping ramp (+300 a minute since 2023)",
            experiment="a constant backlog, batch 1, a 600 ms handler: new environments per minute during the ramp "
            "(the longest handler, the only one whose ramp the rate limits: shorter ones reuse environments and "
            "added 157-281 a minute)",
            measured=297,
            unit="new environments a minute",
            predicted=aws.LAMBDA_SQS_SCALE_PER_MINUTE,
            source='Rehan van der Merwe, "SQS Lambda ESM Scaling Behaviour - Experiment Batch Size vs Processing '
            'Time" (rehanvdm.com): 157-297 cold starts a minute, the most at the longest handler',
        ),
        Measurement(
            rule="Fargate task start (FARGATE_TASK_START_S)",
            experiment="a 413 MB image in a private subnet through NAT, 10 launches from task creation to the "
            "container running",
            measured=57,
            unit="s",
            predicted=aws.FARGATE_TASK_START_S,
            source='ElasticScale, "Reduce AWS Fargate pull times with SOCI": 53-62 s, most 55-59 s',
        ),
        Measurement(
            rule="Fargate task start (FARGATE_TASK_START_S)",
            experiment="desired count raised straight to 3,500 (no alarm in the loop), a small image",
            measured=30,
            unit="s to the first tasks",
            predicted=aws.FARGATE_TASK_START_S,
            source='Vlad Ionescu, "Scaling containers on AWS in 2022" (vladionescu.me)',
            why_off="the start grows with the image: a small image starts in ~30 s, this project's worker image "
            "(Python, boto3, Powertools) is nearer the 413 MB case; set the measured figure for yours",
        ),
        Measurement(
            rule="Lambda cold start (LAMBDA_COLD_START_S)",
            experiment="python3.13, arm64, 512 MB, a hello-world zip, 10 cold invokes (Init Duration)",
            measured=0.091,
            unit="s",
            predicted=aws.LAMBDA_COLD_START_S,
            source="maxday/lambda-perf daily benchmark (2025-12-21 data)",
            why_off="hello world imports nothing; the worker imports boto3 and Powertools, which `make bench`'s "
            "cold-start bench measures at 0.3-0.6 s here",
        ),
    ]

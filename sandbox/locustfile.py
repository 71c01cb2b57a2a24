"""Flash-sale shoppers: one class per checkout path. Run by the sandbox as a subprocess."""

from __future__ import annotations

import os
import random

from locust import HttpUser, constant, task

SKUS = ["SKU-RED-TEE", "SKU-CAP", "SKU-HOODIE", "SKU-SOCKS"]


DECLINE_SHARE = float(os.environ.get("SANDBOX_DECLINE_SHARE", "0"))  # chaos: cards the processor declines


def order() -> dict[str, object]:
    return {
        "customer_id": f"cust-{random.randint(1, 10_000)}",
        "items": [{"sku": random.choice(SKUS), "qty": random.randint(1, 3), "price": "19.99"}],
        "currency": "USD",
        "payment_token": "tok_declined" if random.random() < DECLINE_SHARE else "tok_visa",
    }


class AsyncBuyer(HttpUser):
    """Checks out through POST /orders (accepted, paid in the background)."""

    wait_time = constant(0)

    @task
    def checkout(self) -> None:
        self.client.post("/orders", json=order(), name="POST /orders")


class SyncBuyer(HttpUser):
    """Checks out through POST /orders/sync (pays inline: the seed's baseline)."""

    wait_time = constant(0)

    @task
    def checkout(self) -> None:
        self.client.post("/orders/sync", json=order(), name="POST /orders/sync")

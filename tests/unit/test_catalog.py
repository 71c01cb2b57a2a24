"""The catalog: files checked whole, orders priced by the server, stock never oversold (in memory)."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest

from orders.adapters.memory import InMemoryCatalog, InMemoryOrderRepository, InMemoryPublisher, in_memory_persistence
from orders.adapters.payment import FixedBudget, IdempotentPayments, SimulatedPaymentProcessor
from orders.domain.catalog import CatalogFileError, parse_catalog, price_cart, shard_stock
from orders.domain.errors import PriceChangedError, SoldOutError, UnknownSkuError, ValidationError
from orders.domain.models import OrderStatus, parse_order_json, parse_order_request
from orders.domain.service import OrderService

ROW = {"sku": "SKU-A", "name": "A", "price": "10.00", "currency": "USD", "stock": 5}


def catalog_file(*rows: dict) -> str:
    return json.dumps({"products": list(rows)})


def service(stock: int, shards: int, *, declined: bool = False) -> OrderService:
    catalog = InMemoryCatalog(parse_catalog(catalog_file({**ROW, "stock": stock}), shards=shards))
    processor = SimulatedPaymentProcessor(slots=50, latency_ms=0)
    payments = IdempotentPayments(processor, in_memory_persistence(), ttl_s=3600)
    payments.register_lambda_context(FixedBudget(60_000))
    return OrderService(
        repository=InMemoryOrderRepository(catalog), publisher=InMemoryPublisher(), payments=payments, catalog=catalog
    )


def cart(qty: int = 1, token: str = "tok_visa", **line: object):
    return parse_order_request(
        {"customer_id": "c-1", "items": [{"sku": "SKU-A", "qty": qty, **line}], "payment_token": token}
    )


def totals(catalog: InMemoryCatalog) -> dict[str, int]:
    out = dict.fromkeys(("initial", "sold", "released", "left"), 0)
    for counters in catalog.shards.values():
        for k in out:
            out[k] += counters[k]
    return out


# -- the file ---------------------------------------------------------------------------------------------
def test_a_good_file_splits_each_products_stock_over_its_shards():
    rows = parse_catalog(catalog_file(ROW, {**ROW, "sku": "SKU-Y", "price": 1500, "currency": "JPY"}), shards=4)
    assert [(r.product.sku, r.product.price, r.stock, r.product.shards) for r in rows] == [
        ("SKU-A", Decimal("10.00"), 5, 4),
        ("SKU-Y", Decimal("1500"), 5, 4),
    ]
    assert shard_stock(5, 4) == [2, 1, 1, 1] and shard_stock(2, 4) == [1, 1, 0, 0]


def test_every_bad_row_is_named_on_its_own_line_and_nothing_is_returned():
    text = catalog_file(
        ROW,
        {**ROW, "sku": "SKU-B", "price": "0"},
        {**ROW, "sku": "SKU-C", "currency": "JPY", "price": "1.50"},
        {**ROW, "sku": "SKU-A"},
        {**ROW, "sku": "SKU-D", "stock": -1},
        {**ROW, "sku": "SKU-E", "colour": "red"},
    ).replace(
        '"price": "10.00", "currency": "USD", "stock": 5}, {"sku": "SKU-B"',
        '"price": 1e2, "currency": "USD", "stock": 5}, {"sku": "SKU-B"',
        1,
    )
    with pytest.raises(CatalogFileError) as info:
        parse_catalog(text, shards=1)
    assert info.value.problems == [
        "products[0].price: must be a non-negative amount of up to 8 digits with at most 2 decimals",
        "products[1].price: must be above zero (nothing is sold for free)",
        "products[2].price: JPY has 0 decimal places",
        "products[3].sku: SKU-A appears twice",
        "products[4].stock: must be a whole number 0-10000000",
        "products[5].colour: is not a known field",
    ]


@pytest.mark.parametrize("text", ["", "[]", '{"products": []}', '{"products": [1]}', "{"])
def test_a_file_that_is_not_a_catalog_is_refused(text):
    with pytest.raises(CatalogFileError):
        parse_catalog(text, shards=1)


# -- pricing ----------------------------------------------------------------------------------------------
PRODUCTS = {
    r.product.sku: r.product
    for r in parse_catalog(catalog_file(ROW, {**ROW, "sku": "SKU-Y", "price": 1500, "currency": "JPY"}), shards=1)
}


def test_the_total_comes_from_the_catalog_never_the_body():
    lines = parse_order_json(b'{"customer_id": "c", "items": [{"sku": "SKU-A", "qty": 3}]}').lines
    assert price_cart(lines, PRODUCTS, None) == ("USD", Decimal("30.00"))


def test_a_stale_displayed_price_is_refused_with_the_current_one():
    lines = parse_order_json(b'{"customer_id": "c", "items": [{"sku": "SKU-A", "qty": 1, "price": 0.01}]}').lines
    with pytest.raises(PriceChangedError) as info:
        price_cart(lines, PRODUCTS, None)
    assert (info.value.sku, info.value.price, info.value.currency) == ("SKU-A", Decimal("10.00"), "USD")
    # The same price written another way is the same price.
    same = parse_order_json(b'{"customer_id": "c", "items": [{"sku": "SKU-A", "qty": 1, "price": 10}]}').lines
    assert price_cart(same, PRODUCTS, "USD")[1] == Decimal("10.00")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"customer_id": "c", "items": [{"sku": "SKU-NOPE", "qty": 1}]}', UnknownSkuError),
        ('{"customer_id": "c", "items": [{"sku": "SKU-A", "qty": 1}, {"sku": "SKU-Y", "qty": 1}]}', ValidationError),
        ('{"customer_id": "c", "currency": "EUR", "items": [{"sku": "SKU-A", "qty": 1}]}', ValidationError),
    ],
)
def test_unknown_skus_and_mixed_currencies_are_refused(body, error):
    with pytest.raises(error):
        price_cart(parse_order_json(body.encode()).lines, PRODUCTS, parse_order_json(body.encode()).currency)


@pytest.mark.parametrize("price", ["1e2", "19.999999999999999", "1E+2", "-1"])
def test_json_number_prices_never_pass_through_float(price):
    with pytest.raises(ValidationError) as info:
        parse_order_json(f'{{"customer_id": "c", "items": [{{"sku": "SKU-A", "qty": 1, "price": {price}}}]}}'.encode())
    assert info.value.field in ("items[0].price", "body")


def test_a_total_no_processor_can_charge_is_refused():
    big = {r.product.sku: r.product for r in parse_catalog(catalog_file({**ROW, "price": "99999999.99"}), shards=1)}
    lines = parse_order_json(b'{"customer_id": "c", "items": [{"sku": "SKU-A", "qty": 2}]}').lines
    with pytest.raises(ValidationError, match="above what one charge may carry"):
        price_cart(lines, big, None)


# -- stock ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shards", [1, 4])
def test_concurrent_checkouts_never_sell_more_than_the_stock(shards):
    # GIVEN 7 units over `shards` shards and 40 shoppers at once, some buying 2
    svc = service(stock=7, shards=shards)
    sold: list[int] = []
    refused: list[str] = []
    start = threading.Barrier(40)

    def shop(n: int) -> None:
        qty = 2 if n % 5 == 0 else 1
        start.wait()
        try:
            svc.accept(svc.price(cart(qty)))
            sold.append(qty)
        except SoldOutError as exc:
            refused.append(exc.sku)

    threads = [threading.Thread(target=shop, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # THEN never more than 7 units, and with one-unit buyers refused only when nothing is left anywhere
    assert sum(sold) <= 7 and len(sold) + len(refused) == 40
    counters = totals(svc.catalog)  # type: ignore[arg-type]
    assert counters["left"] == 7 - sum(sold) and counters["left"] <= 1
    held = sum(i.qty for o in svc.repository.all() for i in o.items)  # type: ignore[attr-defined]
    assert held == sum(sold)  # a refused checkout wrote no order


def test_a_reservation_falls_over_to_the_shards_that_still_hold_stock():
    # GIVEN 3 units over 4 shards (one holds none): every unit is sold whichever shard is picked first
    svc = service(stock=3, shards=4)
    for _ in range(3):
        svc.accept(svc.price(cart()))
    with pytest.raises(SoldOutError):
        svc.accept(svc.price(cart()))
    assert totals(svc.catalog) == {"initial": 3, "sold": 3, "released": 0, "left": 0}  # type: ignore[arg-type]


def test_a_declined_order_gives_its_stock_back_once_however_often_it_is_delivered():
    svc = service(stock=4, shards=2)
    order = svc.accept(svc.price(cart(qty=2, token="tok_declined")))
    event = svc.publisher.events[-1]  # type: ignore[attr-defined]
    for _ in range(3):  # the first delivery and two redeliveries
        svc.process_placed(event)
    assert svc.get(order.order_id).status is OrderStatus.PAYMENT_FAILED
    assert totals(svc.catalog) == {"initial": 4, "sold": 2, "released": 2, "left": 4}  # type: ignore[arg-type]
    for _ in range(2):
        svc.accept(svc.price(cart(qty=2)))  # the stock given back sells again, and no more
    with pytest.raises(SoldOutError):
        svc.accept(svc.price(cart()))


def test_a_rejected_order_whose_client_was_told_5xx_gives_its_stock_back():
    svc = service(stock=1, shards=1)
    svc.publisher.fail = True  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="publisher is down"):
        svc.accept(svc.price(cart()))
    assert [o.status for o in svc.repository.all()] == [OrderStatus.REJECTED]  # type: ignore[attr-defined]
    assert totals(svc.catalog)["left"] == 1  # type: ignore[arg-type]


def test_sold_out_writes_nothing():
    svc = service(stock=0, shards=2)
    with pytest.raises(SoldOutError):
        svc.place_and_pay(svc.price(cart()))
    assert svc.repository.all() == [] and svc.publisher.events == []  # type: ignore[attr-defined]


# -- contention -------------------------------------------------------------------------------------------
def _canceled(stub, *codes: str) -> None:
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        modeled_fields={"CancellationReasons": [{"Code": c} for c in codes]},
    )


def test_a_transaction_conflict_is_retried_then_a_short_shard_falls_over_then_sold_out():
    # GIVEN DynamoDB answering a reservation as AWS does under contention (moto never conflicts)
    import boto3
    from botocore.stub import Stubber

    from orders.adapters.dynamodb import DynamoOrderRepository
    from orders.domain.errors import ContendedError

    client = boto3.client("dynamodb", region_name="us-east-1")
    repo = DynamoOrderRepository("orders", lambda: client, catalog_table="catalog")
    svc = service(stock=10, shards=2)
    svc.repository, svc.sleep = repo, lambda s: None
    request = svc.price(cart())
    with Stubber(client) as stub:
        _canceled(stub, "None", "TransactionConflict")  # a concurrent write on the shard: try again
        _canceled(stub, "None", "ConditionalCheckFailed")  # that shard is short: the other one
        stub.add_response("transact_write_items", {})
        order = svc.accept(request)
        stub.assert_no_pending_responses()
    assert len({r.shard for r in order.reservations}) == 1
    with Stubber(client) as stub:
        for _ in range(2):
            _canceled(stub, "None", "ConditionalCheckFailed")
        with pytest.raises(SoldOutError):
            svc.accept(request)  # both shards short: sold out, nothing written
    with Stubber(client) as stub:
        for _ in range(5):
            _canceled(stub, "None", "TransactionConflict")
        with pytest.raises(ContendedError):
            svc.accept(request)  # still contended after 5 tries: the API answers 503, retry

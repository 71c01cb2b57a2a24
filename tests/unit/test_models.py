from decimal import Decimal

import pytest

from orders.domain.errors import InvalidTransitionError, ValidationError
from orders.domain.models import OrderStatus, check_transition, parse_order_request


def test_valid_order_is_parsed_with_displayed_prices_as_decimal(valid_order):
    cart = parse_order_request(valid_order)
    assert cart.customer_id == "cust-42" and cart.currency == "USD"
    assert [(line.sku, line.qty, line.price) for line in cart.lines] == [
        ("SKU-RED-TEE", 2, Decimal("19.99")),
        ("SKU-CAP", 1, Decimal("7.50")),
    ]
    assert cart.payment_token == "tok_visa"


def test_price_and_currency_are_optional_the_catalog_prices_the_order(valid_order):
    del valid_order["currency"]
    for item in valid_order["items"]:
        del item["price"]
    cart = parse_order_request(valid_order)
    assert cart.currency is None and all(line.price is None for line in cart.lines)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.update(customer_id=""), "customer_id"),
        (lambda o: o.update(items=[]), "items"),
        (lambda o: o.update(items="x"), "items"),
        (lambda o: o["items"][0].pop("sku"), "items[0].sku"),
        (lambda o: o["items"][1].update(qty=0), "items[1].qty"),
        (lambda o: o["items"][0].update(qty=1.5), "items[0].qty"),
        (lambda o: o["items"][0].update(qty=True), "items[0].qty"),
        (lambda o: o["items"][0].update(price=-1), "items[0].price"),
        (lambda o: o["items"][0].update(price="abc"), "items[0].price"),
        (lambda o: o["items"][0].update(price="1.001"), "items[0].price"),
        (lambda o: o["items"][0].update(price="NaN"), "items[0].price"),
        (lambda o: o["items"][0].update(colour="red"), "items[0].colour"),
        (lambda o: o.update(currency="XXX"), "currency"),
        (lambda o: o["items"].append({"sku": "SKU-CAP", "qty": 1}), "items[2].sku"),  # one line per SKU
        (lambda o: o["items"][0].update(qty=101), "items[0].qty"),
        (lambda o: o["items"][0].update(price=19.99), "items[0].price"),  # a float: never read as money
        (lambda o: o.update(coupon="FREE"), "coupon"),
        (lambda o: o.update(payment_token=5), "payment_token"),
    ],
)
def test_invalid_orders_name_the_field(valid_order, mutate, field):
    mutate(valid_order)
    with pytest.raises(ValidationError) as info:
        parse_order_request(valid_order)
    assert info.value.field == field


def test_non_object_body_is_rejected():
    with pytest.raises(ValidationError) as info:
        parse_order_request([1, 2])
    assert info.value.field == "body"


def test_lifecycle_edges_are_exactly_placed_paying_terminal_or_rejected():
    allowed = {
        (OrderStatus.PLACED, OrderStatus.PAYING),
        (OrderStatus.PLACED, OrderStatus.REJECTED),
        (OrderStatus.PAYING, OrderStatus.PAID),
        (OrderStatus.PAYING, OrderStatus.PAYMENT_FAILED),
    }
    for current in OrderStatus:
        for target in OrderStatus:
            if (current, target) in allowed:
                check_transition(current, target)
            else:
                with pytest.raises(InvalidTransitionError):
                    check_transition(current, target)

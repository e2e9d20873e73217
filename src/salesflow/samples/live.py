"""Seed 003's live feed: one mock sale at a time, with no heavy imports (the Lambda
generator uses it, and numpy would cost the package ~49 MB)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

FIRST = ("Foo", "Ada", "Grace", "Alan", "Linus", "Maria", "Ken", "Barbara", "Joan")
LAST = ("Bar", "Lovelace", "Hopper", "Turing", "Torvalds", "Curie", "Thompson")
ITEMS = ("Item One", "Desk Lamp", "USB Cable", "Coffee Mug", "Notebook", "Backpack")
PRODUCTS = {
    "Laptop": "Electronics", "Headphones": "Electronics", "Smartphone": "Electronics",
    "Monitor": "Electronics", "Office Chair": "Furniture", "Standing Desk": "Furniture",
    "Running Shoes": "Apparel", "Rain Jacket": "Apparel", "Espresso Machine": "Kitchen",
    "Blender": "Kitchen",
}  # fmt: skip
CHANNELS = ("web", "store", "app")


def sale_event(rng: random.Random, now: datetime) -> dict[str, Any]:
    """One live sale for ``generate --stream`` (seed 003: price uniform 50..500)."""
    product = rng.choice(list(PRODUCTS))
    first, last = rng.choice(list(FIRST)), rng.choice(list(LAST))
    when = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return {
        "sale_id": f"{rng.getrandbits(128):032x}",
        "product": product,
        "category": PRODUCTS[product],
        "price": round(rng.uniform(50, 500), 2),
        "quantity": 1,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "store_id": f"store-{rng.randint(1, 39)}",
        "customer_email": f"{first.lower()}.{last.lower()}{rng.randint(1, 998)}@example.com",
        "currency": "USD",
        "channel": rng.choice(CHANNELS),
    }

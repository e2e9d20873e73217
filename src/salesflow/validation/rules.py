"""Every rule id salesflow reports, with a one-line description.

Ids are stable dotted strings ``<kind>.<name>``: reports, dead letters, metrics and alarms
key on them, so an id is never renamed or reused. ``structure.*`` rules with a file-level
cause fail the whole file (``FileLevelError``); every other rule rejects single records.
"""

from __future__ import annotations

RULES: dict[str, str] = {
    # file level: the file cannot be read at all
    "structure.empty": "the file is empty (no header, no records)",
    "structure.not_text": (
        "the file is not text (NUL bytes, or a ZIP, Excel, UTF-16, PDF... signature); gzip is read"
    ),
    "structure.bad_gzip": (
        "the gzip data is corrupt or cut short, or inflates past the bound (a zip bomb)"
    ),
    "structure.json_depth": (
        "the JSON nests deeper than 64 levels (file level for a document, record level for "
        "a JSON Lines line)"
    ),
    "structure.bad_csv": "the CSV cannot be parsed (e.g. an unterminated quote)",
    "structure.bad_json": "the JSON cannot be parsed (file level), or a JSON Lines line cannot",
    "structure.json_shape": "the top-level JSON value is not a shape this dataset accepts",
    "structure.missing_header": "the first line lacks one or more required column headers",
    "structure.format": "the file's format (CSV or JSON) is not one this dataset accepts",
    "structure.unknown_dataset": "the dataset cannot be told from the key, header or JSON shape",
    "structure.io": "the file cannot be read from disk (permissions, vanished, I/O error)",
    "structure.missing": "the object named by an event is not in the bucket",
    # record level
    "structure.not_object": "a JSON record is not an object",
    "structure.field_count": (
        "a CSV record has more fields than the header, or fewer with a required field among "
        "the missing ones (missing optional trailing fields read as missing values)"
    ),
    "presence.contact_info": "orders_json: contact-info is missing or empty",
    "presence.order_info": "orders_json: order-info is missing or empty",
    "presence.required": "a required field is missing or blank",
    "type.integer": "a value that must be an integer is not",
    "type.number": "a value that must be a finite number is not",
    "type.date": "a value that must be a date/time cannot be parsed",
    "range.positive": "a price, cost or quantity that must be > 0 is not",
    "range.non_negative": "a value that must be >= 0 is negative (Online Retail UnitPrice)",
    "range.nonzero": "a quantity that must not be 0 is 0 (Online Retail Quantity)",
    "date.future": "a date/time lies in the future",
    "email.format": "an e-mail address does not look like one",
    "format.currency": "a currency is not a 3-letter upper-case ISO code",
    "enum.status": "a status is not one of the values the dataset allows",
    "business.quantity_sign": (
        "Online Retail: a cancellation has a positive Quantity, or a priced line outside a "
        "cancellation has a negative one"
    ),
    "business.cost_le_retail": "products: cost is above retail_price",
    "business.num_of_item": "orders: num_of_item is below 1",
    "business.sale_price": "order_items: sale_price is not > 0",
    "unique.key": "the record key already appeared earlier in the same file",
    "ref.product_id": "order_items.product_id is not a known product",
    "ref.order_id": "order_items.order_id is not a known order",
}

"""The Spark job's arguments: wrong ones exit 2 before any Spark session or claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from salesflow.config import Settings
from salesflow.entrypoints import spark_job


def test_keys_come_from_arguments_and_files_once_each_in_batch_order(tmp_path: Path) -> None:
    listing = tmp_path / "keys.txt"
    listing.write_text("inbox/orders/o.csv\n\ninbox/other/x.json\n")
    args, _ = spark_job._parser().parse_known_args(
        [
            "--keys",
            "inbox/order_items/i.csv, inbox/orders/o.csv",
            "--keys-file",
            str(listing),
            "--keys",
            "s3://b/inbox/products/p.csv",
            "--JOB_RUN_ID",
            "jr_1",
        ]  # fmt: skip
    )
    settings = Settings(backend="aws", aws={"bucket": "b", "region": "eu-west-1"})
    keys = spark_job.keys_of(args, settings)
    assert keys == [
        "inbox/order_items/i.csv",
        "inbox/orders/o.csv",
        "inbox/products/p.csv",
        "inbox/other/x.json",
    ]
    assert spark_job.batch_order(keys, settings) == [
        "inbox/products/p.csv",
        "inbox/orders/o.csv",
        "inbox/order_items/i.csv",
        "inbox/other/x.json",
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "no keys given"),
        (["--keys", "s3://another-bucket/inbox/a.csv"], "not in the configured bucket"),
        (["--keys", "inbox/../../etc/passwd"], "inbox/../../etc/passwd"),
        (["--keys-file", "/nonexistent/keys.txt"], "keys.txt"),
        (["--keys", '["inbox/a.csv",'], "not a JSON array of keys"),
    ],
)
def test_wrong_arguments_exit_2_and_touch_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    data_dir = tmp_path / "data"
    assert spark_job.main(["--data-dir", str(data_dir), *argv]) == spark_job.EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not data_dir.exists()


def test_keys_may_come_as_a_json_array() -> None:
    args, _ = spark_job._parser().parse_known_args(
        ["--keys", '["inbox/orders/a b.csv", "inbox/products/p.csv"]']
    )
    assert spark_job.keys_of(args, Settings()) == ["inbox/orders/a b.csv", "inbox/products/p.csv"]

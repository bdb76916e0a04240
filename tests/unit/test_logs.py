"""Log records of the shell carry their context (actors._logs)."""

from __future__ import annotations

import json
import logging

import pytest
from ray._common.formatters import JSONFormatter

from actors._logs import logger_for, logging_config


def test_records_carry_the_logger_s_fields_and_the_call_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logger_for("tests.logs", vsm_tree="t", vsm_host="root")
    with caplog.at_level(logging.INFO, logger="tests.logs"):
        log.info("delivering %s failed", "e-1", extra={"envelope_id": "e-1", "vsm_path": "root/a"})
        log.info("plain")
    first, second = (json.loads(JSONFormatter().format(r)) for r in caplog.records)
    assert first["message"] == "delivering e-1 failed"
    assert (first["vsm_tree"], first["vsm_host"], first["vsm_path"]) == ("t", "root", "root/a")
    assert first["envelope_id"] == "e-1"
    assert (second["vsm_tree"], second["vsm_host"]) == ("t", "root")
    assert "vsm_path" not in second


def test_the_ray_logging_config_for_each_format() -> None:
    assert logging_config("json").encoding == "JSON"
    assert logging_config("text").encoding == "TEXT"
    with pytest.raises(ValueError, match="log format"):
        logging_config("xml")

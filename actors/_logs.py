"""Log records that say where they come from: tree, host, viable system, envelope.

Rules:
    1. The shell logs through :class:`ContextLogger`: every record carries the fields its
       logger was made with (``vsm_tree``, and ``vsm_host`` or ``vsm_cluster``) merged with
       those of the call (``vsm_path``, ``envelope_id``), as attributes of the record.
    2. Formatting is Ray's: with ``ray.init(logging_config=ray.LoggingConfig(encoding="JSON"))``
       (``vsm up --log-format json``), every line of the job's driver and of its actors'
       workers is a JSON object holding the message, the level, Ray's context (job, actor,
       task ids) and those fields; with the default text encoding they follow the message as
       ``key=value``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import ray

__all__ = ["LOG_FORMATS", "ContextLogger", "logger_for", "logging_config"]

LOG_FORMATS = ("text", "json")
"""What ``--log-format`` takes."""


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger adding its fields, and the call's ``extra``, to every record (rule 1)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def logger_for(name: str, **fields: object) -> ContextLogger:
    """The logger ``name`` with ``fields`` on every record."""
    return ContextLogger(logging.getLogger(name), fields)


def logging_config(log_format: str) -> ray.LoggingConfig:
    """The Ray job logging configuration for ``log_format`` (``text`` or ``json``).

    Raises:
        ValueError: another format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r}")
    return ray.LoggingConfig(encoding=log_format.upper(), additional_log_standard_attrs=["name"])

"""`logging._srcfile` still switches off the caller lookup (service/compat/stdlib.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from service.compat.stdlib import skip_caller_lookup


@pytest.fixture
def restored_srcfile() -> Iterator[None]:
    saved = logging._srcfile
    # As the logging module sets it at import (an app built earlier in the run may have cleared it).
    logging._srcfile = os.path.normcase(logging.addLevelName.__code__.co_filename)
    yield
    logging._srcfile = saved


def test_records_carry_no_caller_once_the_lookup_is_skipped(restored_srcfile: None) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tests.compat.stdlib")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("with the lookup")
        skip_caller_lookup()
        logger.warning("without it")
    finally:
        logger.removeHandler(handler)
    assert records[0].funcName == "test_records_carry_no_caller_once_the_lookup_is_skipped"
    assert records[1].funcName == "(unknown function)"
    assert records[1].pathname == "(unknown file)"

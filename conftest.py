"""Suite-wide checks shared by every test."""
from typing import Iterator

import pytest
from tqdm import tqdm


@pytest.fixture(autouse=True)
def no_progress_bar_left_open() -> Iterator[None]:
    """Fails a test whose code leaves a tqdm bar open.

    A bar left open (e.g. by an exception that skipped its `close`) shifts every later bar of the process to a lower
    line, and tqdm then prefixes the lines written around it with cursor-movement escapes, which garbles the
    one-line errors of any later in-process run.
    """
    before = set(map(id, tqdm._instances))
    yield
    leaked = [bar for bar in list(tqdm._instances) if id(bar) not in before and not getattr(bar, "disable", False)]
    for bar in leaked:
        bar.close()
    assert not leaked, f"progress bars left open: {[getattr(b, 'desc', '') for b in leaked]}"

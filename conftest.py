"""Suite-wide settings and checks shared by every test."""
import os
from typing import Iterator

import pytest
from tqdm import tqdm


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Downloads, metric statistics and compiled XLA steps of the suite (and of the processes it starts) go to a
    temporary folder instead of the user's `~/.cache/ganformer`, unless GANFORMER_CACHE_DIR is set already."""
    if os.environ.get("GANFORMER_CACHE_DIR"):
        yield
        return
    os.environ["GANFORMER_CACHE_DIR"] = str(tmp_path_factory.mktemp("ganformer-cache"))
    try:
        yield
    finally:
        os.environ.pop("GANFORMER_CACHE_DIR", None)


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

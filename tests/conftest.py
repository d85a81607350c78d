"""Shared fixtures: isolate every test's dataset cache from the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("contrast-cache")
    previous = os.environ.get("CONTRAST_CACHE")
    os.environ["CONTRAST_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("CONTRAST_CACHE", None)
    else:
        os.environ["CONTRAST_CACHE"] = previous

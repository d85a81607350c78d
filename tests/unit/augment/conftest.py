"""Session fixtures of the augmentation tests."""

from __future__ import annotations

import pytest
from augment_crystals import rock_salt, silicon, triclinic


@pytest.fixture(scope="session")
def crystals():
    return {"rock_salt": rock_salt(), "silicon": silicon(), "triclinic": triclinic()}

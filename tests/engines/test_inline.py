from __future__ import annotations

import pytest
from suite import EngineSuite

from tidal.engines.inline import InlineEngine


class TestInlineEngine(EngineSuite):
    @pytest.fixture
    def engine(self) -> InlineEngine:
        return InlineEngine()

"""Body proportions from a pose model's 3-D joints (see ``measure.Measure``)."""

from bodies.measure import Measure

__all__ = ["Measure"]

"""Which MediaPipe landmarks make which body segment (indexes of the 33 pose landmarks)."""

NOSE = 0
SHOULDERS = (11, 12)
ELBOWS = (13, 14)
WRISTS = (15, 16)
HIPS = (23, 24)
KNEES = (25, 26)
ANKLES = (27, 28)
HEELS = (29, 30)

# joints a frame needs, well seen, to be measured
REQUIRED = (NOSE, *SHOULDERS, *ELBOWS, *WRISTS, *HIPS, *KNEES, *ANKLES, *HEELS)

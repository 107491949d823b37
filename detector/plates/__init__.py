"""Chinese number plates: read them in an image (:class:`PlateReader`), vote over a track (:class:`PlateVote`).

The networks are HyperLPR's (PyPI ``hyperlpr2``, MIT), translated from Caffe to ONNX in memory and
run by onnxruntime next to OpenCV 5; see docs/plates.md for the choice and its measurements.

Example::

    >>> from detector.plates import PlateReader, PlateVote                  # doctest: +SKIP
    >>> reads = PlateReader().read(frame, box=(x1, y1, x2, y2))             # doctest: +SKIP
    >>> vote = PlateVote(); vote.add(reads[0] if reads else None, frame)    # doctest: +SKIP
"""
from detector.plates.reader import PlateRead, PlateReader, is_plate
from detector.plates.vote import PlateVote, VotedPlate

__all__ = ["PlateRead", "PlateReader", "PlateVote", "VotedPlate", "is_plate"]

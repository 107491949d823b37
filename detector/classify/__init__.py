"""Classifiers on crops of a camera frame, beside the detector (issue 10, items 2 and 3; docs/detector.md).

* :mod:`detector.classify.tflite` — a quantised TFLite image model on one crop (the ImageNet classifier and
  the embedding extractor both take a 224x224 RGB uint8 crop);
* :mod:`detector.classify.second_look` — the ImageNet classifier's look at a candidate's crop before its
  ``start``: confirm it, or rescue a box of another COCO class (a dog the model boxed as a cat);
* :mod:`detector.classify.heads` — a linear head on embeddings (present or absent), saved as ``.npz``;
* :mod:`detector.classify.spots` — training a per-spot head from an operator's labelled crops;
* :mod:`detector.classify.scenes` — a zone's state (present or absent), changed only after N identical samples.

Example::

    >>> from detector.classify.tflite import square_around
    >>> square_around((0.4, 0.4, 0.6, 0.5), (100, 200), margin=0.0)
    (80, 25, 120, 65)
"""

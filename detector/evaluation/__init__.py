"""The quality benchmark, ``nonsite eval LABELS.yaml`` (docs/quality.md): labelled real media played
through the detector, and per scenario how many violations it found, missed and invented.

:mod:`~detector.evaluation.labels` (the labels file), :mod:`~detector.evaluation.run` (playing a file
through the pipeline, shared with ``nonsite detect-file``), :mod:`~detector.evaluation.scoring` (the
matching rule and the counts), :mod:`~detector.evaluation.report` (the table and JSON) and
:mod:`~detector.evaluation.command` (the command).

Example::

    $ nonsite eval bench/quality/labels.yaml --media ../shared/media
"""

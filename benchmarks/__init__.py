"""Quality and speed benchmarks of napari-gr2r against the field's baselines.

Run from the repository root (the ``bench`` extra holds the optional baselines)::

    python -m benchmarks.quality --out benchmarks/results
    python -m benchmarks.speed --out benchmarks/results

Both take ``--smoke`` for a run of a few seconds on tiny images.
"""

"""Case input/output. This package alone owns image geometry.

- :mod:`voxmmsd.io.discovery` finds the four sequences (and label) of a case or data set.
- :mod:`voxmmsd.io.geometry` describes grids and resamples onto a reference grid.
- :mod:`voxmmsd.io.reader` reads and validates images and loads a whole case.
- :mod:`voxmmsd.io.labels` holds the label conventions, regions and the label table.
- :mod:`voxmmsd.io.writer` writes label maps (NIfTI, Slicer ``.seg.nrrd``) atomically.
"""

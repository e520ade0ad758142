"""Raw-exam preparation: a clinical exam onto the reference grid before segmentation.

:mod:`~voxmmsd.exam.load` (``load_exam``: the steps in order), :mod:`~voxmmsd.exam.register` (rigid
co-registration and its convergence check), :mod:`~voxmmsd.exam.skullstrip` (brain extraction with deepbet,
the one step that needs PyTorch), :mod:`~voxmmsd.exam.acquisition` (thick slices, unusual voxels, the working
grid) and :mod:`~voxmmsd.exam.qc` (the registration / brain-mask picture). Reading and checking the files, and
putting them on one grid, is :mod:`voxmmsd.io.reader`'s. Nothing is imported here.
"""

"""Self-supervised pre-training (Vox-MMSD): SiaBloMM views, ORMS voxel pairs, EMA teacher, DINO loss.

Pure algorithms live in small modules (:mod:`views`, :mod:`masking`, :mod:`augment`,
:mod:`orms`, :mod:`pyramid`, :mod:`loss`, :mod:`teacher`); :mod:`sampler` turns a
cached case into one training pair (numpy, on the loader's CPU), :mod:`step` turns a
batch of pairs into the losses (torch, on the training device), and :mod:`loop` runs
the job. See ``docs/pretraining.md``.
"""

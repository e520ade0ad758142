"""A local cohort: reviewed segmentations collected case by case, fine-tuned on and compared.

``layout`` (the folder, case ids, ``case.json``, list and remove), ``edits`` (what the reviewer
changed per segment), ``add`` (a case in, checked and written atomically), ``exams`` (unlabelled
raw exams prepared for pre-training), ``recipe`` (the fine-tuning settings a starting model
implies), ``compare`` (both models on held-out cases, and the install rule), ``learn`` (the
cross-validated fine-tuning run), ``install`` (a new model version with its provenance).
Nothing is imported here.
"""

"""Seeded split of case ids into training and validation sets.

A selection is ``None`` (every case left), a number of cases, a fraction of all cases,
or an explicit list of case ids. The same ids and seed always give the same split,
whatever order the cases were found in.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from voxmmsd.errors import InputError

#: a selection, as :data:`voxmmsd.finetune.config.Selection`
Selection = object


def shuffled(ids: Sequence[str], seed: int) -> List[str]:
    """``ids`` sorted, then permuted by ``seed``."""
    ordered = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def count_of(sel: Selection, n_total: int, what: str) -> int:
    """How many cases a number or fraction selects out of ``n_total``."""
    if isinstance(sel, bool):
        raise InputError(f"{what}: {sel!r} is not a number of cases, a fraction or a list of case ids.")
    if isinstance(sel, int):
        if sel < 0:
            raise InputError(f"{what}: {sel} cases is negative.")
        return sel
    if isinstance(sel, float):
        if not 0.0 <= sel <= 1.0:
            raise InputError(f"{what}: a fraction must be between 0 and 1, not {sel}.")
        k = int(round(sel * n_total))
        return max(k, 1) if sel > 0 and n_total > 1 else k
    raise InputError(f"{what}: {sel!r} is not a number of cases, a fraction or a list of case ids.")


def _explicit(sel: Sequence[str], available: Sequence[str], what: str) -> List[str]:
    missing = [c for c in sel if c not in set(available)]
    if missing:
        raise InputError(f"{what} names case(s) not in the data set: {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}. Available: {sorted(available)[:8]}"
                         f"{' ...' if len(available) > 8 else ''}.")
    if len(set(sel)) != len(sel):
        raise InputError(f"{what} lists a case more than once.")
    return list(sel)


def split_cases(ids: Sequence[str], train: Selection = None, val: Selection = 0.2,
                seed: int = 0) -> Tuple[List[str], List[str]]:
    """(training ids, validation ids): validation is chosen first, training from the rest.

    Raises :class:`InputError` naming unknown ids, overlapping lists, or too few cases.
    """
    if not ids:
        raise InputError("The data set has no labelled cases to train on.")
    order = shuffled(ids, seed)
    if isinstance(val, (list, tuple)):
        val_ids = _explicit(val, order, "The validation list (data.val)")
    elif val is None:
        val_ids = []
    else:
        k = count_of(val, len(order), "data.val")
        if k >= len(order):
            raise InputError(f"data.val asks for {k} validation case(s) but the data set has only {len(order)}; "
                             f"leave at least one for training.")
        val_ids = order[len(order) - k:] if k else []
    rest = [c for c in order if c not in set(val_ids)]
    if isinstance(train, (list, tuple)):
        train_ids = _explicit(train, order, "The training list (data.train)")
        both = sorted(set(train_ids) & set(val_ids))
        if both:
            raise InputError(f"Case(s) {both[:5]} are in both the training and the validation list.")
    elif train is None:
        train_ids = rest
    else:
        k = count_of(train, len(order), "data.train")
        if k > len(rest):
            raise InputError(f"data.train asks for {k} training case(s) but only {len(rest)} remain after "
                             f"{len(val_ids)} validation case(s).")
        train_ids = rest[:k]
    if not train_ids:
        raise InputError("No case is left for training; lower data.val or give more cases.")
    return train_ids, val_ids

"""The sequence vocabulary: the four MRI sequences, their names, the reference-sequence rule, and what a name says.

Plain Python (no numpy, no SimpleITK, no torch) on Python 3.9, so that the engine's discovery
(:mod:`voxmmsd.io.discovery`) and the Slicer module's volume matching (``assignInputs``) read names the
same way: one table, one answer.

A name (a file name without its extension, a DICOM series description, a Slicer volume name) is read in
two ways (:func:`classify`):

1. **Naming conventions**, on the last ``-``/``_``/``.``/space-separated token (:func:`classify_name`):

   =========================  ==========  ==========  ==========  ==========  =======
   convention                 T1n         T1c         T2w         FLAIR       label
   =========================  ==========  ==========  ==========  ==========  =======
   BraTS 2023+                ``-t1n``    ``-t1c``    ``-t2w``    ``-t2f``    ``-seg``
   BraTS <= 2021              ``_t1``     ``_t1ce``   ``_t2``     ``_flair``  ``_seg``
   UPENN-GBM                  ``_T1``     ``_T1GD``   ``_T2``     ``_FLAIR``  ``_segm``
   short names                ``t1``      ``t1c``     ``t2``      ``flair``   ``seg``
   nnU-Net (channel order)    ``_0000``   ``_0001``   ``_0002``   ``_0003``   labelsTr
   =========================  ==========  ==========  ==========  ==========  =======

2. **Scanner names** (:func:`classify_clinical`), when no convention matches: the name's words are read for
   FLAIR (``fla``, ``flair``, ``tirm``, ``dark fluid``), a contrast agent (``+C``, ``C+``, ``post``, ``gad``,
   ``gd``, ``ce``, ``km``, agent names; ``pre``/``native`` say none), T1 (``t1``, ``mprage``, ``spgr``,
   ``bravo``, ``tfe``) and T2 (``t2``, ``tse``/``fse`` without T1). A FLAIR with T1 named and no T2
   (``T1 FLAIR``, ``T1FLAIR``, ``AX T1 POST GD FLAIR``: GE's T1-weighted FLAIR) is a T1, with or without
   contrast, not a T2-FLAIR. Diffusion, perfusion, susceptibility, T2* and localisers are never taken.

A convention match is refined by the scanner reading where that says more: ``sub-01_ce-gadolinium_T1w``
(BIDS) is a T1 with contrast, ``exam_T1_FLAIR`` a T1-weighted FLAIR.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

#: The four sequences, in the network's channel order.
SEQUENCES: Tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")

#: Human-readable names of the sequences.
SEQUENCE_NAMES: Dict[str, str] = {
    "t1n": "T1 native (T1n)",
    "t1c": "T1 post-contrast (T1c)",
    "t2w": "T2-weighted (T2w)",
    "t2f": "T2-FLAIR (T2f)",
}

#: what a name classified as a label map is called (the key :func:`classify` returns for it)
LABEL = "label"

#: the sequence whose grid a case is put on, when present (:func:`reference_for`)
REFERENCE = "t1c"

#: file-name tokens that name a label map
LABEL_WORDS: Tuple[str, ...] = ("seg", "segm", "label", "labels", "mask")

#: File-name token -> sequence key (or ``"label"``).
NAME_TOKENS: Dict[str, str] = {
    "t1n": "t1n", "t1": "t1n", "t1w": "t1n", "native": "t1n", "t1native": "t1n",
    "t1c": "t1c", "t1ce": "t1c", "t1gd": "t1c", "t1post": "t1c", "gd": "t1c",
    "t2w": "t2w", "t2": "t2w",
    "t2f": "t2f", "flair": "t2f", "t2flair": "t2f",
    **{w: LABEL for w in LABEL_WORDS},
}

#: nnU-Net channel suffix -> sequence key (the order of :data:`SEQUENCES`).
NNUNET_CHANNELS: Dict[str, str] = {"%04d" % i: s for i, s in enumerate(SEQUENCES)}

#: words (lower case) of scanner names that say FLAIR / a contrast agent / no agent / T1 / T2
FLAIR_WORDS = frozenset({"fla", "flair", "t2f", "t2flair", "t1flair", "tirm", "flair3d", "spcflair", "darkfluid",
                         "irfse"})
CONTRAST_WORDS = frozenset({"+", "+c", "c+", "c", "ce", "gd", "gad", "gado", "gadolinium", "post", "postcontrast",
                            "postgad", "postgd", "contrast", "km", "mdc", "kontrast", "dotarem", "gadovist",
                            "magnevist", "multihance", "prohance", "clariscan", "t1c", "t1ce", "t1gd", "t1post",
                            "t1km"})
NATIVE_WORDS = frozenset({"pre", "precontrast", "native", "nativ", "noncontrast", "t1n", "t1native"})
T1_WORDS = frozenset({"t1", "t1w", "t1n", "t1c", "t1ce", "t1gd", "t1post", "t1km", "t1native", "t1flair", "mprage",
                      "mp", "spgr", "fspgr", "bravo", "tfe", "t1tse", "t1se", "t1fse", "vibe", "t1flash", "flash3d"})
T2_WORDS = frozenset({"t2", "t2w", "t2tse", "t2fse", "t2space", "tse", "fse", "haste"})
#: words that name T2 weighting itself (``tse``/``fse`` are read-outs, used for T1 too)
T2_NAMED = frozenset({"t2", "t2w", "t2f", "t2flair", "t2tse", "t2fse", "t2space"})
#: words of series that are none of the four sequences, even if they hold a word above
OTHER_WORDS = frozenset({"dwi", "adc", "trace", "dti", "diffusion", "swi", "swan", "t2star", "star", "gre", "perf",
                         "perfusion", "dsc", "dce", "asl", "cbf", "cbv", "localizer", "localiser", "loc", "scout",
                         "survey", "mra", "tof", "angio", "fa", "map", "mip", "phase", "pha", "mosaic"})

_SPLIT = re.compile(r"[-_.\s]+")
_WORDS = re.compile(r"\+?[a-z0-9]+\+?|\+")


# ---------------------------------------------------------------- which sequences, and the reference

def reference_for(present: Iterable[str], wanted: str = REFERENCE) -> str:
    """The sequence whose grid a case goes onto: ``wanted`` when present, else the first present one in channel
    order. Raises ValueError when none is present."""
    have = [s for s in SEQUENCES if s in set(present)]
    if not have:
        raise ValueError("no sequence present")
    return wanted if wanted in have else have[0]


def missing(present: Iterable[str], needed: Sequence[str] = SEQUENCES, allowed: Iterable[str] = ()) -> List[str]:
    """The sequences of ``needed`` that are absent and not in ``allowed`` (channel order). With no sequence present
    at all, every one of ``needed`` is missing, whatever ``allowed`` says: a case needs at least one image."""
    have = set(present)
    if not have.intersection(SEQUENCES):
        return [s for s in SEQUENCES if s in needed]
    skip = set(allowed)
    return [s for s in SEQUENCES if s in needed and s not in have and s not in skip]


# ---------------------------------------------------------------- naming conventions

def _tokens(stem: str) -> List[str]:
    return [t for t in _SPLIT.split(stem.lower()) if t]


def classify_name(stem: str) -> Optional[str]:
    """The sequence key (or ``"label"``) a naming convention gives a file stem, or None.

    >>> classify_name("BraTS-GLI-00001-000-t2f")
    't2f'
    >>> classify_name("Brats18_2013_3_1_t1ce")
    't1c'
    >>> classify_name("case_0002")
    't2w'
    """
    tokens = _tokens(stem)
    if not tokens:
        return None
    last = tokens[-1]
    if last in NNUNET_CHANNELS:
        return NNUNET_CHANNELS[last]
    if last in NAME_TOKENS:
        return NAME_TOKENS[last]
    if len(tokens) >= 2 and tokens[-2] + last in NAME_TOKENS:  # "t2_flair", "t1_ce"
        return NAME_TOKENS[tokens[-2] + last]
    return None


# ---------------------------------------------------------------- scanner names

def words(name: str) -> List[str]:
    """Lower-case words of a scanner name; a '+' is a word, or stays on the word it touches ('c+', '+c')."""
    out: List[str] = []
    for w in _WORDS.findall(name.lower().replace("*", " star ")):
        if w.startswith("t1+") or w.startswith("t2+"):  # "t1+c" -> "t1", "+c"
            out += [w[:2], w[2:]]
        elif len(w) > 2 and w.endswith("+"):  # "t1flair+" (of "T1FLAIR+C") -> "t1flair", "+"
            out += [w[:-1], "+"]
        else:
            out.append(w)
    return out


def _listed(found: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(found))


def classify_clinical(name: str) -> Optional[Tuple[str, str]]:
    """(sequence key, why) for a name as scanners and clinical exports write it, or None.

    >>> classify_clinical("exam_T1+C")
    ('t1c', 'T1 with contrast (t1, +, c)')
    >>> classify_clinical("AX T2 FLAIR")[0], classify_clinical("AX T1 POST GD FLAIR")[0]
    ('t2f', 't1c')
    """
    ws = words(name)
    if not ws or OTHER_WORDS.intersection(ws):
        return None
    flair = [w for w in ws if w in FLAIR_WORDS] or (["dark fluid"] if "darkfluid" in "".join(ws) else [])
    t1 = [w for w in ws if w in T1_WORDS]
    t1_weighted_flair = bool(flair) and bool(t1) and not T2_NAMED.intersection(ws)
    if flair and not t1_weighted_flair:
        return "t2f", f"FLAIR ({_listed(flair)})"
    native = [w for w in ws if w in NATIVE_WORDS]
    agent = [w for w in ws if w in CONTRAST_WORDS and (w != "c" or t1)]
    kind = "T1-weighted FLAIR" if t1_weighted_flair else "T1"
    if agent and not native:
        if t1:
            return "t1c", f"{kind} with contrast ({_listed(t1 + flair + agent)})"
        return "t1c", f"contrast agent ({_listed(agent)}), so post-contrast T1"
    if t1:
        return "t1n", f"{kind} without contrast ({_listed(t1 + flair + native)})"
    t2 = [w for w in ws if w in T2_WORDS]
    if t2:
        return "t2w", f"T2-weighted ({_listed(t2)})"
    return None


# ---------------------------------------------------------------- both, and Slicer's volumes

#: a convention's answer -> the scanner readings that refine it (a T1 with an agent named; a T1-weighted FLAIR)
_REFINED = {"t1n": ("t1c",), "t2f": ("t1n", "t1c")}


def classify(name: str) -> Optional[Tuple[str, str]]:
    """(sequence key or ``"label"``, why) for a file stem, DICOM series description or volume name, or None.

    >>> classify("BraTS-GLI-00001-000-t1c")
    ('t1c', 'naming convention (T1 post-contrast (T1c))')
    >>> classify("T1 FLAIR post contrast")[0], classify("sub-01_ce-gadolinium_T1w")[0], classify("Ax DWI")
    ('t1c', 't1c', None)
    """
    key = classify_name(name)
    scanner = classify_clinical(name)
    if key is not None and not (scanner is not None and scanner[0] in _REFINED.get(key, ())):
        return key, f"naming convention ({SEQUENCE_NAMES.get(key, 'label map')})"
    return scanner


def assign_volumes(names: Iterable[str]) -> Dict[str, Optional[str]]:
    """Sequence key -> one of ``names`` (Slicer volume names), or None: each sequence takes the first name, in the
    order given (the order volumes were loaded), that :func:`classify` reads as it; label maps and names that say
    no sequence are never taken."""
    out: Dict[str, Optional[str]] = {k: None for k in SEQUENCES}
    for name in names:
        found = classify(name)
        if found is not None and found[0] in out and out[found[0]] is None:
            out[found[0]] = name
    return out

"""``voxmmsd models list | install ID | import FOLDER | verify [ID] | remove ID``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="list, install, import, verify or remove models",
                       description="Manage segmentation models: the catalog, the bundled models and the per-user "
                                   "cache ($VOXMMSD_HOME or the platform's user data folder).")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser("list", help="catalog, bundled and installed models")
    i = msub.add_parser("install", help="download, verify and install a catalog model")
    i.add_argument("model", help="ID or ID@VERSION")
    i.add_argument("--replace", action="store_true", help="replace an installed copy of the same ID@VERSION")
    imp = msub.add_parser("import", help="add a local model package folder to the cache")
    imp.add_argument("folder", type=Path)
    imp.add_argument("--replace", action="store_true", help="replace an installed package with the same ID@VERSION")
    v = msub.add_parser("verify", help="check a model as segment would use it: schema, value ranges, checksums, "
                                       "weights, ONNX graph, a forward pass (one model, or every installed one)")
    v.add_argument("model", nargs="?", help="ID, ID@VERSION or package folder")
    r = msub.add_parser("remove", help="delete an installed model from the cache")
    r.add_argument("model", help="ID or ID@VERSION")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "install": _install, "import": _import, "verify": _verify,
            "remove": _remove}[args.models_command](args)


def _list(args: argparse.Namespace) -> int:
    from voxmmsd.models import cache
    from voxmmsd.models.catalog import bundled, bundled_versions, catalog_path, load_catalog, resources_dir

    out = [f"Catalog ({catalog_path()}):"]
    entries = load_catalog()
    for e in entries:
        state = "installed" if cache.find_installed(e.id, e.version) else f"{e.size / 1e6:.1f} MB download"
        out.append(f"  {e.id}@{e.version:10s} {e.name} [{state}]")
    if not entries:
        out.append("  (empty)")
    out.append(f"Bundled ({resources_dir()}):")
    found = [p for p in sorted(resources_dir().iterdir()) if p.is_dir() and bundled(p.name)] \
        if resources_dir().is_dir() else []
    for p in found:
        for version, folder, default in bundled_versions(p.name):
            note = f"  (default: --model {p.name})" if default else ""
            out.append(f"  {p.name}@{version:10s} {folder}{note}")
    if not found:
        out.append("  (none)")
    out.append(f"Installed ({cache.models_dir()}):")
    out += [line for i, v, p in cache.installed() for line in installed_lines(i, v, p)] or ["  (none)"]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def installed_lines(model_id: str, version: str, folder: Path) -> "list[str]":
    """An installed model's line, and its provenance when it was fine-tuned on a local cohort."""
    from voxmmsd.cohort.install import describe
    from voxmmsd.errors import ModelError
    from voxmmsd.models.package import read_model_json

    try:
        provenance = describe(read_model_json(folder))
    except ModelError as exc:
        provenance = f"DAMAGED: {exc}"
    return [f"  {model_id}@{version}  {folder}"] + ([f"      {provenance}"] if provenance else [])


def _install(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from voxmmsd.models.catalog import bundled, install, split_spec

    mid, ver = split_spec(args.model)
    here = bundled(mid, ver) if ver else None
    if here is not None:  # nothing to download: say how to use it
        sys.stdout.write(f"{mid}@{ver} is bundled with VoxMMSD ({here}); nothing to install. "
                         f"Use it with --model {mid}@{ver}.\n")
        return 0
    bar = tqdm(unit="B", unit_scale=True, desc=args.model)

    def progress(done: int, total: Any) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        pkg = install(args.model, progress, replace=args.replace)
    finally:
        bar.close()
    sys.stdout.write(f"installed {pkg.summary()} in {pkg.folder}\n")
    return 0


def _import(args: argparse.Namespace) -> int:
    from voxmmsd.models.cache import add_package

    pkg = add_package(args.folder, replace=args.replace)
    sys.stdout.write(f"imported {pkg.summary()} into {pkg.folder}\n")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from voxmmsd.errors import ModelError
    from voxmmsd.models import cache
    from voxmmsd.models.catalog import resolve_model
    from voxmmsd.models.package import load_package
    from voxmmsd.models.smoke import forward_check

    if args.model:
        pkg = resolve_model(args.model)
        ran = forward_check(pkg)
        sys.stdout.write(f"OK {pkg.summary()} ({pkg.folder}; forward pass: {', '.join(ran) or 'none'})\n")
        return 0
    bad = 0
    for mid, ver, folder in cache.installed():
        try:
            ran = forward_check(load_package(folder))
            sys.stdout.write(f"OK     {mid}@{ver} (forward pass: {', '.join(ran) or 'none'})\n")
        except ModelError as exc:
            bad += 1
            sys.stdout.write(f"FAILED {mid}@{ver}: {exc}\n")
    return 1 if bad else 0


def _remove(args: argparse.Namespace) -> int:
    from voxmmsd.models.cache import remove
    from voxmmsd.models.catalog import split_spec

    mid, ver = split_spec(args.model)
    for p in remove(mid, ver):
        sys.stdout.write(f"removed {p}\n")
    return 0

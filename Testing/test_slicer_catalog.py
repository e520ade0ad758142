"""The extension's listing: the JSON catalog entry the Slicer Extensions Index (5.8 and later)
expects, consistent with CMakeLists.txt and the .s4ext; icon and screenshot URLs that name
files which exist in this repository and are PNG images; honest contributors; a licence file."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Slicer's catalog-entry schema v1.0.1 (Slicer/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json),
#: restated: what the Extensions Index's check_description_files.py validates an entry against
ENTRY_SCHEMA = {
    "type": "object",
    "required": ["$schema", "category", "scm_url"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"},
        "category": {"type": "string"},
        "scm_url": {"type": "string"},
        "scm_revision": {"type": "string"},
        "scm_type": {"type": "string", "enum": ["git", "local"]},
        "build_dependencies": {"type": "array", "items": {"type": "string"}},
        "build_subdirectory": {"type": "string"},
        "enabled": {"type": "boolean"},
        "tier": {"type": "integer", "enum": [1, 3, 5]},
    },
}


def cmake_values(text: str) -> dict:
    return {m.group(1): m.group(2) for m in re.finditer(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text)}


@pytest.fixture(scope="module")
def cmake():
    return cmake_values((ROOT / "CMakeLists.txt").read_text())


@pytest.fixture(scope="module")
def s4ext():
    return dict(line.split(" ", 1) for line in (ROOT / "VoxMMSD.s4ext").read_text().splitlines()
                if line.strip() and not line.startswith("#"))


@pytest.fixture(scope="module")
def entry():
    return json.loads((ROOT / "VoxMMSD.json").read_text())


def test_catalog_entry_matches_the_schema_and_the_index_checks(entry):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(entry, ENTRY_SCHEMA)
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
                                       "slicer-extension-catalog-entry-schema-v1.0.1.json")
    project = re.search(r"project\((\w+)\)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert project == "VoxMMSD" == Path("VoxMMSD.json").stem  # the entry is named after the project
    url = urlsplit(entry["scm_url"])
    assert url.scheme == "https" and "slicer" in Path(url.path).stem.lower()
    assert entry["category"] == "Segmentation"
    for name in ("LICENSE", "LICENSE.txt", "COPYING"):
        if (ROOT / name).is_file():
            assert "Apache License" in (ROOT / name).read_text()
            break
    else:
        pytest.fail("the Extensions Index refuses a repository without a licence file")


def test_entry_cmake_and_s4ext_agree(entry, cmake, s4ext):
    assert entry["build_dependencies"] == cmake["EXTENSION_DEPENDS"].split() == s4ext["depends"].split() == \
        ["PyTorch"]
    assert entry["category"] == cmake["EXTENSION_CATEGORY"] == s4ext["category"]
    assert entry["scm_url"] == s4ext["scmurl"] and entry["scm_revision"] == s4ext["scmrevision"]
    assert cmake["EXTENSION_ICONURL"] == s4ext["iconurl"]
    assert cmake["EXTENSION_SCREENSHOTURLS"].split() == s4ext["screenshoturls"].split()
    assert cmake["EXTENSION_CONTRIBUTORS"] == s4ext["contributors"]


def repo_file(url: str, entry: dict) -> Path:
    """The repository file a raw.githubusercontent.com URL of this repository names."""
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "raw.githubusercontent.com", url
    owner, repo, revision, *path = parts.path.strip("/").split("/")
    scm = urlsplit(entry["scm_url"]).path.strip("/").removesuffix(".git").split("/")
    assert [owner, repo] == scm and revision == entry["scm_revision"], f"{url} is not in this repository"
    return ROOT.joinpath(*path)


def png_size(path: Path) -> tuple:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_icon_and_screenshots_exist_in_the_repository(entry, cmake):
    icon = repo_file(cmake["EXTENSION_ICONURL"], entry)
    assert icon.is_file() and png_size(icon) == (128, 128)
    shots = [repo_file(u, entry) for u in cmake["EXTENSION_SCREENSHOTURLS"].split()]
    assert shots and all(p.is_file() and min(png_size(p)) >= 200 for p in shots)
    assert (ROOT / "docs" / "images" / "sample-qc.png") in shots  # the QC output at least
    docs = " ".join((ROOT / "docs" / "slicer.md").read_text(encoding="utf-8").replace("*", "").split())
    assert "none of them is a screenshot of a running Slicer" in docs  # said plainly


def test_contributors_are_not_a_template_placeholder(cmake):
    text = cmake["EXTENSION_CONTRIBUTORS"]
    assert text and not re.search(r"John Doe|Jane Roe|Firstname|Lastname|AnyWare|Superware|Noware", text)
    module = (ROOT / "VoxMMSDSegmentation" / "VoxMMSDSegmentation.py").read_text()
    assert re.search(r'self\.parent\.contributors = \["VoxMMSD developers \(VoxMMSD project\)"\]', module)

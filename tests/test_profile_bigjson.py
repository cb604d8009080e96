"""Profile JSON without a Python float per summary value: the text written and hashed is what
``json.dumps`` gives the plain document, the arrays read are the floats a plain parse gives,
anything unexpected reads through the plain parse, and a load holds no float per value."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from engine_fixtures import reference_table, write
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import ProfileError
from driftline.io.readers import discover
from driftline.profile import bigjson
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile, NumericFeature

finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0.0, -0.0, 5e-324, 1e16, 1e-7, 3.0, -1e300, 0.1]))
arrays = st.lists(st.lists(finite, max_size=40).map(lambda v: np.array(v, dtype=np.float64)),
                  min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(arrays, st.sampled_from([None, 1, 2]), st.booleans(), st.integers(0, 3))
def test_chunks_are_the_text_json_gives_the_lists(arrs: list[np.ndarray], indent: int | None,
                                                  sort_keys: bool, depth: int) -> None:
    """At any nesting, as a dict value or a list element, with or without indent and sorted
    keys: byte for byte json.dumps of the same document with the arrays as lists."""
    def doc(values: list[Any]) -> Any:
        node: Any = {"z": 1.5, "summary": values[0], "a": [values[1:], "x", {"k": None}]}
        for i in range(depth):
            node = {"b": i, f"level{i}": node} if i % 2 == 0 else {"c": [[], node, 2]}
        return node

    markers = [bigjson.marker(i) for i in range(len(arrs))]
    got = "".join(bigjson.chunks(doc(markers), arrs, indent=indent, sort_keys=sort_keys))
    want = json.dumps(doc([a.tolist() for a in arrs]), indent=indent, sort_keys=sort_keys)
    assert got == want


def test_chunks_refuse_markers_that_do_not_match_the_arrays() -> None:
    one = [np.array([1.0])]
    with pytest.raises(ValueError, match="markers"):
        "".join(bigjson.chunks({"a": bigjson.marker(0), "b": bigjson.marker(0)}, one))
    with pytest.raises(ValueError, match="markers"):
        "".join(bigjson.chunks({"a": 1}, one))


def _doc(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    values = np.sort(np.concatenate([rng.normal(0, 1, n), [0.0, -0.0, 1e-300, 1e12]]))
    return {"features": {"x": {"summary": values.tolist(), "edges": [0.5, 1.0]},
                         "y": {"summary": [1.0, 2.0]}},
            "output": {"prediction": {"summary": (values * 3).tolist()}}, "n": 3}


def _same(a: Any, b: Any) -> bool:
    """Equal as documents, an array equal to a list when every float is the same double."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return x.shape == y.shape and bool((x.view(np.uint64) == y.view(np.uint64)).all())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("layout", [{"indent": 1}, {}, {"separators": (",", ":")}])
def test_loads_gives_the_plain_parse_with_summaries_as_arrays(layout: dict[str, Any]) -> None:
    doc = _doc(2000, 1)
    raw = json.dumps(doc, **layout).encode()
    got = bigjson.loads(raw)
    assert _same(got, orjson.loads(raw))  # every double bit for bit, -0.0 included
    x = got["features"]["x"]["summary"]
    if "separators" not in layout:  # json's layouts: the long summaries come back as arrays
        assert isinstance(x, np.ndarray) and not x.flags.writeable
        assert isinstance(got["output"]["prediction"]["summary"], np.ndarray)
        assert isinstance(got["features"]["y"]["summary"], list)  # short: parsed as usual
    else:  # another layout: the plain parse, same values
        assert isinstance(x, list)


@pytest.mark.parametrize("change", ["null", "nested", "in a string", "marker in a string",
                                    "unclosed"])
def test_anything_unexpected_reads_as_the_plain_parse(change: str) -> None:
    doc = _doc(2000, 2)
    if change == "null":
        doc["features"]["x"]["summary"][5] = None
    elif change == "nested":
        doc["features"]["x"]["summary"] = [doc["features"]["x"]["summary"]]
    elif change == "in a string":
        doc["note"] = '"summary": [' + "1.0, " * 2000 + "2.0]"
    elif change == "marker in a string":
        doc["note"] = bigjson.marker(0)
    raw = json.dumps(doc, indent=1).encode()
    if change == "unclosed":
        raw = raw[:raw.rindex(b"]")]
        with pytest.raises(orjson.JSONDecodeError):
            bigjson.loads(raw)
        return
    assert _same(bigjson.loads(raw), orjson.loads(raw))


OPTS = BuildOptions(summary_size=20_000)


def test_a_saved_profile_loads_equal_with_its_id_and_saves_the_same_bytes(tmp_path: Path) -> None:
    t = reference_table(6000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    prof.save(tmp_path / "p.json")
    text = (tmp_path / "p.json").read_text()
    assert text == json.dumps(prof.to_dict(), indent=1, allow_nan=False) + "\n"
    back = BaselineProfile.load(tmp_path / "p.json")
    assert back == prof and back.to_dict() == prof.to_dict()
    x = back.features["x"]
    assert isinstance(x, NumericFeature) and len(x.summary) > bigjson.MIN_VALUES
    stored = back.id
    del back.__dict__["id"]  # recomputed from the arrays: the recorded id
    assert back.id == stored == prof.id
    back.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == text


def test_damaged_summaries_still_name_the_file(tmp_path: Path) -> None:
    t = reference_table(6000)
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    prof.save(tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["features"]["x"]["summary"][3] = None
    (tmp_path / "bad.json").write_text(json.dumps(doc, indent=1))
    with pytest.raises(ProfileError, match=r"bad\.json.*damaged"):
        BaselineProfile.load(tmp_path / "bad.json")
    (tmp_path / "cut.json").write_bytes((tmp_path / "p.json").read_bytes()[:-4000])
    with pytest.raises(ProfileError, match=r"cut\.json.*invalid JSON at line \d+"):
        BaselineProfile.load(tmp_path / "cut.json")


def test_a_load_holds_no_python_float_per_summary_value(tmp_path: Path) -> None:
    """A plain parse holds the bytes, the decoded text, a 32-byte Python float per value and
    orjson's scratch (≈ 300 bytes per value here); the load holds the bytes, the 8-byte arrays
    and one slice's scratch."""
    rng = np.random.default_rng(3)
    t = pa.table({f"f{i}": rng.normal(i, 1, 20_000) for i in range(12)})
    prof = build_profile(discover([str(write(t, tmp_path / "r.parquet"))]), OPTS)
    prof.save(tmp_path / "p.json")
    values = sum(len(f.summary) for f in prof.features.values()
                 if isinstance(f, NumericFeature))
    size = (tmp_path / "p.json").stat().st_size
    assert values == 240_000
    BaselineProfile.load(tmp_path / "p.json")  # imports done
    tracemalloc.start()
    try:
        back = BaselineProfile.load(tmp_path / "p.json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert back == prof
    assert peak < size + 16 * values + (8 << 20), (peak, size, values)

"""Text columns: descriptors against a hand-computed reference, their drift through the usual
numeric statistics, and bad text (nulls, non-UTF-8 bytes) offline and live."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from engine_fixtures import write
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.cli import main
from driftline.detectors.text import descriptors
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import from_records
from driftline.errors import InputError
from driftline.io.readers import discover
from driftline.profile.build import BuildOptions, build_profile
from driftline.profile.format import BaselineProfile


def _by_hand(text: str | None, vocab: set[str]) -> dict[str, float]:
    if text is None:
        return dict.fromkeys(("length_chars", "length_tokens", "non_letter_share",
                              "unseen_token_share", "empty"), math.nan)
    toks = [t for t in re.split(r"[^\w]+", text.lower()) if t]
    visible = [c for c in text if not c.isspace()]
    return {
        "length_chars": float(len(text)), "length_tokens": float(len(toks)),
        "non_letter_share": (sum(not c.isalpha() for c in visible) / len(visible)
                             if visible else math.nan),
        "unseen_token_share": (sum(t not in vocab for t in toks) / len(toks)
                               if toks else math.nan),
        "empty": 0.0 if visible else 1.0,
    }


@settings(max_examples=60)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(
    list("abcXYZ éü中 12_!?.,\t\n")), max_size=30)), min_size=1, max_size=20))
def test_descriptors_equal_a_hand_computation(texts: list[str | None]) -> None:
    vocab = {"abc", "a", "é", "12"}
    got = descriptors(np.array(texts, dtype=object), vocab)
    for i, t in enumerate(texts):
        want = _by_hand(t, vocab)
        for k, v in want.items():
            assert got[k][i] == pytest.approx(v, nan_ok=True), (t, k)


def _reviews(n: int, seed: int, *, style: str = "plain") -> pa.Table:
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "great", "service", "food", "slow", "fast", "price", "staff", "nice"]
    if style == "new":
        words = ["refund", "broken", "app", "crash", "login", "error", "update", "bug", "bad", "slow"]
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 12))
        s = " ".join(rng.choice(words, k)) if k else ""
        if style == "new":
            s += " !!! 404"
        out.append(s)
    return pa.table({"x": rng.normal(size=n), "review": pa.array(out, pa.string())})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BaselineProfile]:
    d = tmp_path_factory.mktemp("text")
    ref = write(_reviews(5000, 1), d / "ref.parquet")
    assert main(["baseline", "build", str(ref), "-o", str(d / "p.json"), "--no-progress",
                 "--text", "review"]) == 0
    return d, BaselineProfile.load(d / "p.json")


def test_text_profile_and_drift_in_analyze(built: tuple[Path, BaselineProfile],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    d, prof = built
    t = prof.text["review"]
    assert set(t.vocabulary) == {"good", "bad", "great", "service", "food", "slow", "fast",
                                 "price", "staff", "nice"}
    names = [f"review.{x}" for x in t.descriptors]
    assert all(n in prof.features for n in names) and "review" not in prof.features
    empty_share = 1 / 12  # k == 0
    assert prof.features["review.empty"].mean == pytest.approx(empty_share, abs=0.02)
    same = write(_reviews(2000, 2), d / "same.parquet")
    new = write(_reviews(2000, 3, style="new"), d / "new.parquet")
    docs = []
    for data in (same, new):
        main(["analyze", "--baseline", str(d / "p.json"), str(data), "--window-size", "1000",
              "--format", "json"])
        docs.append(json.loads(capsys.readouterr().out))
    for w in docs[0]["windows"]:
        assert not any(w["features"][n]["drifted"] for n in names)
    for w in docs[1]["windows"]:
        f = w["features"]
        assert f["review.unseen_token_share"]["drifted"] and f["review.non_letter_share"]["drifted"]
        assert f["review.empty"]["drifted"]  # no text is empty any more


def test_bad_text_offline_and_live(built: tuple[Path, BaselineProfile], tmp_path: Path) -> None:
    bad = write(pa.table({"x": [1.0, 2.0], "review": pa.array([b"ok", b"\xff\xfe"], pa.binary())}),
                tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="not UTF-8") as e:
        build_profile(discover([str(bad)]), BuildOptions(text=("review",)))
    assert e.value.column == "review"
    nums = write(pa.table({"x": [1.0], "review": [3]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match="strings") as e:
        build_profile(discover([str(nums)]), BuildOptions(text=("review",)))
    assert e.value.column == "review"
    _, prof = built
    recs = [{"features": {"x": float(i), "review": "good food"}} for i in range(20)]
    recs[0]["features"]["review"] = None
    recs[1]["features"]["review"] = b"\xff not utf-8"
    recs[2]["features"]["review"] = 42
    recs[3]["features"]["review"] = ""
    mon = Monitor(prof, window=WindowPolicy(records=20, max_age=None), clock=None)
    (w,) = mon.observe(from_records(prof, recs))
    assert w.features["review.length_chars"].n_missing == 3
    assert w.features["review.empty"].n == 17
    assert w.features["x"].n == 20

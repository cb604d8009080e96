"""Template values cannot forge structure, and replays after a crash are no-ops where the target
takes an idempotency key: Argo labels and parameters refuse what would add a label (a forged
dedupe key among them), Argo submits under a name derived from the alert (409 on replay counts
as acted), and docs/actions.md says per preset what a replay does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from receiver_support import target
from test_actions_presets import ctx, make_target, run

from driftline.alertmanager.actions import IDEMPOTENCY
from driftline.alertmanager.actions_config import PRESET_PARAMS

ROOT = Path(__file__).resolve().parents[1]


def _argo(tmp: Path, url: str, **extra: object) -> object:
    return make_target(tmp, {"type": "argo_workflows", "server": url, "namespace": "ml",
                             "template": "retrain", **extra})


@pytest.mark.parametrize("extra", [
    {"labels": {"team": "{{ labels.team }}"}},                   # value adds a label
    {"labels": {"{{ labels.team }}": "x"}},                      # key adds a label
    {"labels": {"driftline/dedupe-key": "forged"}},              # overrides ours
    {"parameters": {"epochs=1,x": "1"}},                         # a name holding "="
])
def test_argo_template_values_cannot_add_labels_or_parameters(tmp_path: Path,
                                                              extra: dict[str, object]) -> None:
    hostile = "ml,driftline/dedupe-key=forged"
    with target() as srv:
        out = run(_argo(tmp_path, srv.url, **extra), ctx(team=hostile))  # type: ignore[arg-type]
        assert not out.ok and not out.retryable
        assert "label" in out.detail or "parameter" in out.detail
        assert srv.seen == []  # nothing was sent


def test_argo_accepts_valid_labels_and_values_with_equals(tmp_path: Path) -> None:
    with target() as srv:
        t = _argo(tmp_path, srv.url, labels={"team": "{{ labels.team }}"},
                  parameters={"query": "a=b,c"})
        out = run(t, ctx(team="risk-ml_2"))  # type: ignore[arg-type]
        assert out.ok, out.detail
        opts = srv.seen[0].json()["submitOptions"]
        assert opts["labels"].endswith(",team=risk-ml_2") and opts["parameters"] == ["query=a=b,c"]


def test_argo_replay_is_refused_by_name_and_counts_as_acted(tmp_path: Path) -> None:
    with target(default=(409, {"code": 6, "message": "workflows.argoproj.io already exists"})) as srv:
        out = run(_argo(tmp_path, srv.url))  # type: ignore[arg-type]
        assert out.ok and "already" in out.detail
        assert srv.seen[0].json()["submitOptions"]["name"] == f"driftline-{ctx()['dedupe_key']}"
        assert re.fullmatch(r"[a-z0-9-]{1,63}", srv.seen[0].json()["submitOptions"]["name"])


def test_docs_table_of_replays_covers_every_preset() -> None:
    assert set(IDEMPOTENCY) == set(PRESET_PARAMS)
    text = (ROOT / "docs" / "actions.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", text.split("replay of the same alert", 1)[1]
                           .split("\n\n", 1)[0], re.M))
    assert rows == IDEMPOTENCY

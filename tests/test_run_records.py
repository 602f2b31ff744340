"""How far a run went (done.json) and how the evaluation's rows become flat metrics."""

from common.atomic import write_json
from experiments.run import _flat
from experiments.rundir import run_progress, run_reached
from experiments.stage_graph import STAGES


def test_progress_from_every_kind_of_done_json(tmp_path):
    assert run_progress(tmp_path / "nothing") == [] and not run_reached(tmp_path / "nothing", "style")
    write_json(tmp_path / "new" / "done.json", {"stages": ["data", "style"], "evaluated": False})
    assert run_progress(tmp_path / "new") == ["data", "style"]
    assert run_reached(tmp_path / "new", "style") and not run_reached(tmp_path / "new", "evaluation")
    assert not run_reached(tmp_path / "new", "decomposition")  # a sibling of style, not done
    write_json(tmp_path / "old" / "done.json", {"until": "composition"})
    assert run_progress(tmp_path / "old") == ["data", "style", "decomposition", "composition"]
    write_json(tmp_path / "imported" / "stages.json", {"style": {}, "decomposition": {}, "composition": {}})
    write_json(tmp_path / "imported" / "done.json", {"imported": True})
    assert not run_reached(tmp_path / "imported", "evaluation")
    write_json(tmp_path / "imported" / "done.json", {"imported": True, "evaluated": True})  # by `d2m evaluate`
    assert run_progress(tmp_path / "imported") == [s for s in STAGES if s != "data"]
    assert run_reached(tmp_path / "imported", "evaluation")


def test_rows_flatten_to_prefixed_numbers():
    rows = {"fid": 1.5, "n": 3, "ok": True, "name": "x", "static": {"fid": 9.0, "deep": {"beat": 0.25}}}
    assert _flat(rows, "controls/") == {"controls/fid": 1.5, "controls/n": 3, "controls/static/fid": 9.0,
                                        "controls/static/deep/beat": 0.25}

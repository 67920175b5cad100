"""Smoke tests of the benchmark suite: a tiny shape, two repeats, every framework that is installed (slow); the
seeds benchmark on the smoke config, two seeds of three steps (fast)."""

import json

import jax
import pytest

import jaxrnn
from benchmarks import run

pytest.importorskip("flax")
slow = pytest.mark.slow  # every framework compiled and timed: run with -m slow (CI does)

TIMING_FIELDS = {"median_ms", "q1_ms", "q3_ms", "iqr_ms", "min_ms", "mean_ms", "first_call_ms", "times_ms"}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.json"
    out = run.main(["--shapes", "tiny", "--cells", "lstm,gru", "--modes", "train,infer", "--repeats", "2",
                    "--warmup", "0", "--json", str(path), "--memory-shape", "B2T16I3H4"])
    return out, path


@slow
def test_prints_a_table_per_shape(result):
    out, _ = result
    markdown = out["markdown"]
    assert "### B2 T4 I3 H4 · float32 ·" in markdown
    assert "| cell | mode | jaxrnn path | jaxrnn ms |" in markdown and "| Flax ms | Flax ÷ jaxrnn |" in markdown
    for cell in ("lstm", "gru (reset_after)"):
        for mode in ("train", "infer"):
            assert f"| {cell} | {mode} |" in markdown
    assert "reset_after=True" in markdown  # the table says which GRU jaxrnn runs
    assert "### Memory: LSTM training step, B2 T16 I3 H4" in markdown


@slow
def test_json_has_the_expected_fields(result):
    out, path = result
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == 1
    assert saved["device"]["name"] and saved["device"]["slug"]
    assert {"jax", "flax", "torch"} <= set(saved["software"])
    assert saved["settings"]["repeats"] == 2
    records = saved["results"]
    assert {(r["cell"], r["mode"]) for r in records} == {(c, m) for c in ("lstm", "gru") for m in ("train", "infer")}
    for r in records:
        assert r["shape"] == {"B": 2, "T": 4, "I": 3, "H": 4}
        assert r["status"] in ("ok", "skipped"), r.get("reason")  # never "error"
        cpu = jax.default_backend() == "cpu"
        if r["framework"] in ("jaxrnn", "Flax") or (r["framework"] == "jaxrnn plain" and cpu):
            assert r["status"] == "ok"
        if r["framework"] == "jaxrnn":  # the path it took: the tiny shape is too narrow for oneDNN's
            assert r["path"] == ("plain" if jax.default_backend() == "cpu" else "fused")
        if r["status"] == "ok":
            assert TIMING_FIELDS <= set(r) and r["median_ms"] > 0 and len(r["times_ms"]) == 2
            assert r["what"] and r["device"]
            assert r["ratio"] == pytest.approx(r["median_ms"] / next(
                q["median_ms"] for q in records
                if q["framework"] == "jaxrnn" and (q["cell"], q["mode"]) == (r["cell"], r["mode"])))
        else:
            assert r["reason"] and r["ratio"] is None
        if r["framework"] in ("jaxrnn", "Flax"):
            assert r["compile_s"] > 0
    jaxrnn_gru = next(r for r in records if r["framework"] == "jaxrnn" and r["cell"] == "gru")
    assert "reset_after=True" in jaxrnn_gru["what"]


@slow
def test_memory_benchmark_reports_both_settings(result):
    memory = result[0]["memory"]
    for setting in ("remat=False", "remat=True"):
        assert memory[setting]["peak_bytes"] > 0
        assert memory[setting]["temp_size_in_bytes"] is not None
    assert memory["peak_bytes_ratio"] > 0


@slow
def test_loop_sweep_times_every_path_and_unroll(tmp_path, capsys):
    from benchmarks import loop

    path = tmp_path / "loop.json"
    out = loop.main(["--shape", "B2T4I3H4", "--cell", "gru", "--unrolls", "1,2", "--repeats", "2", "--json", str(path)])
    rows = json.loads(path.read_text())["rows"]
    onednn = [("onednn", 1)] if "onednn" in jaxrnn.gru(4, reset_after=True).info.paths else []
    assert [(r["path"], r["unroll"]) for r in rows] == [(p, u) for p in ("plain", "projected", "fused")
                                                        for u in (1, 2)] + onednn
    assert all(r["median_ms"] > 0 and r["compile_s"] > 0 for r in rows)
    assert sum(r["default"] for r in rows) == 1  # the library's choice here is marked
    auto = "plain" if jax.default_backend() == "cpu" else "fused"  # the tiny shape: too narrow for oneDNN
    assert f"| {auto} (default) | 1 |" in out["markdown"]
    with pytest.raises(SystemExit):
        loop.main(["--unrolls", "1,64"])
    assert "--unrolls: integers in 1..16" in capsys.readouterr().err


@pytest.mark.slow
def test_seeds_benchmark_times_both_ways_and_checks_the_losses_agree(tmp_path):
    from benchmarks import seeds

    path = tmp_path / "seeds.json"
    out = seeds.main(["--config", "smoke", "--seeds", "2", "--steps", "3", "--repeats", "2", "--warmup", "0",
                      "--no-warm-up-run", "--json", str(path)])
    saved = json.loads(path.read_text())
    assert (saved["config"], saved["seeds"], saved["steps"]) == ("smoke", 2, 3)
    assert saved["device"]["slug"] and saved["software"]["jax"]
    [vmapped], [sequential] = saved["end_to_end"]["vmapped"], saved["end_to_end"]["sequential"]
    assert vmapped["seeds"] == 2 and [(r["seeds"], r["seed"]) for r in sequential] == [(1, 0), (1, 1)]
    for one in (vmapped, *sequential):
        assert one["total_s"] > one["train_s"] > 0 and one["setup_s"] > 0 and one["steps_per_sec"] > 0
        assert len(one["eval_loss"]) == one["seeds"]
    for label in ("vmapped", "single"):
        for part in ("step", "batch", "update"):
            timing = saved["step"][f"{label} {part}"]
            assert TIMING_FIELDS <= set(timing) and timing["median_ms"] > 0 and len(timing["times_ms"]) == 2
    summary = saved["summary"]
    wall, rate = summary["wall_s"], summary["seed_steps_per_s"]  # speed-up: > 1 where the vmapped run is faster
    assert wall["speedup"] == pytest.approx(wall["sequential"] / wall["vmapped"])
    assert rate["speedup"] == pytest.approx(rate["vmapped"] / rate["sequential"])
    assert summary["goal"] == seeds.GOALS.get(saved["device"]["kind"])  # 2x on a CPU, 5x on a GPU
    assert summary["goal"] is None or set(summary["goal_met"]) == {"wall", "steps"}
    # three steps of the smoke config: the vmapped seeds end where their own runs do, to float32 rounding
    equality = summary["equality"]
    assert equality["passed"] and equality["max_relative_difference"] <= equality["rtol"]
    assert set(equality["train_loss_max_relative_difference"]) == {"1", "2", "3"}
    assert "| **wall time, end to end** |" in out["markdown"] and "sequential / one run" in out["markdown"]


def test_process_layouts_parse_and_tabulate():
    from benchmarks import devices

    assert devices.layouts("1x4, 2X2") == [(1, 4), (2, 2)]
    for bad in ("", "4", "2x", "0x4", "axb"):
        with pytest.raises(ValueError, match="--layouts: expected PROCESSESxDEVICES"):
            devices.layouts(bad)
    rows = [{"devices": 4, "processes": 1, "status": "ok", "steps_per_sec": 40.0, "eval_loss": 0.5},
            {"devices": 4, "processes": 2, "status": "ok", "steps_per_sec": 10.0, "eval_loss": 0.5},
            {"devices": 4, "processes": 4, "status": "error", "reason": "boom"}]
    table = devices.markdown(rows, "cfg", 64, "cpu", 4)
    assert "| 1 x 4 | 40.0 | 1.00x | 0.5 |" in table and "| 2 x 2 | 10.0 | 0.25x | 0.5 |" in table
    assert "| 4 x 1 | error: boom | | |" in table and "vs 1 x 4" in table

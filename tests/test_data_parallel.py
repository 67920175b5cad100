"""Data-parallel training (``train.devices``) on 4 forced host devices, in a subprocess so the flag takes effect.

One subprocess runs every case (JAX starts once) and reports JSON; the tests
below read it. Sharded runs must give the losses of the one-device run, a
checkpoint must restore on another number of devices and go on as the
uninterrupted run, and bad device settings are one line with status 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from support import ROOT

SCRIPT = textwrap.dedent(r'''
    import contextlib, io, json, re, shutil, sys
    import jax, jax.numpy as jnp
    from jaxrnn.experiment import data_parallel
    from jaxrnn.experiment.cli import main

    out = sys.argv[1]
    common = ["--progress", "lines", "--set", "train.steps=6", "--set", "train.eval_every=3",
              "--set", "train.checkpoint_every=3", "--set", "train.log_every=1", "--set", "train.batch_size=8",
              "--set", "model.hidden_size=8"]
    configs = {"adding_t50_lstm": ["--set", "data.seq_len=10"],
               "charlm_gru": ["--set", "data.window=10", "--set", "data.embedding_size=4"]}
    # each device's share of a carried state without dropout (charlm_gru drops around its embedding, data.dropout)
    undropped = {"charlm_gru_nodrop": ["charlm_gru", *configs["charlm_gru"], "--set", "data.dropout=0"]}

    def run(*args):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            status = main(list(args))
        return status, err.getvalue().strip()

    # what the runner places: whether some leaf of each batch (or carry) it splits really is split
    split, placed = data_parallel.split, []
    def recording(tree, axes, mesh):
        tree = split(tree, axes, mesh)
        placed.append(any(leaf.sharding.shard_shape(leaf.shape) != leaf.shape
                          for leaf in jax.tree_util.tree_leaves(tree)))
        return tree
    data_parallel.split = recording

    report = {"devices": len(jax.devices()), "runs": {}, "errors": {}, "split": {}}
    for name, extra in configs.items():
        for devices in (1, 4):
            folder = f"{out}/{name}_{devices}"
            placed.clear()
            report["runs"][f"{name}_{devices}"] = run("run", name, "--out", folder, "--overwrite",
                                                      "--set", f"train.devices={devices}", *common, *extra)
            report["split"][f"{name}_{devices}"] = [len(placed), all(placed)]
    for name, (config, *extra) in undropped.items():
        for devices in (1, 4):
            report["runs"][f"{name}_{devices}"] = run("run", config, "--out", f"{out}/{name}_{devices}", "--overwrite",
                                                      "--set", f"train.devices={devices}", *common, *extra)
    # where the compiled update sums across devices: never inside the loop over time steps, but with dropout
    from jaxrnn.experiment import catalog, stepper
    from jaxrnn.experiment import config as config_lib

    def loop_collectives(name, overrides):
        config = config_lib.load(name, ["train.devices=4", "train.batch_size=8", "model.hidden_size=8", *overrides])
        update = stepper.build(config, [catalog.experiment(config.experiment).problem(config)])
        text = update.update.lower(update.saved, update.batch(0), update.dropout_key(0)).compile().as_text()
        calls, ops, current = {}, {}, None
        for line in text.splitlines():
            head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
            if head:
                current = head.group(1)
                calls[current], ops[current] = set(), 0
                continue
            if current is None:
                continue
            calls[current] |= set(re.findall(r"(?:body|condition|calls|to_apply|branch_computations)="
                                             r"\{?%?([\w.\-]+)", line))
            ops[current] += len(re.findall(r" (?:all-reduce|all-gather|reduce-scatter)(?:-start)?\(", line))
        inside = set(re.findall(r"body=%?([\w.\-]+)", text))
        todo = list(inside)
        while todo:
            for callee in calls.get(todo.pop(), ()):
                if callee not in inside:
                    inside.add(callee)
                    todo.append(callee)
        return sum(ops[c] for c in inside if c in ops)

    report["loop_collectives"] = {
        "adding": loop_collectives("adding_t50_lstm", ["data.seq_len=10"]),
        "charlm_nodrop": loop_collectives("charlm_gru", ["data.window=10", "data.embedding_size=4", "data.dropout=0"]),
        "charlm_dropout": loop_collectives("charlm_gru", ["data.window=10", "data.embedding_size=4"]),
    }
    # both loops over replicas (vmap: a GPU's default, map: the CPU's) around each device's share of the loss
    from jaxrnn.experiment import replicas
    report["replica_loops"] = {}
    for name, overrides in (("adding_t50_lstm", ["data.seq_len=10"]),
                            ("charlm_gru", ["data.window=10", "data.embedding_size=4", "data.dropout=0"])):
        config = config_lib.load(name, ["train.devices=4", "train.batch_size=8", "model.hidden_size=8",
                                        "train.seeds=2", *overrides])
        members = replicas.of(config)
        problems = [catalog.experiment(config.experiment).problem(m.config) for m in members]
        for loop in ("map", "vmap"):
            update = stepper.build(config, problems, members, loop=loop)
            saved = update.saved
            for step in range(3):
                saved, metrics = update(saved, step)
            report["replica_loops"][f"{name}_{loop}"] = [float(v) for v in metrics["loss"]]
    # two seeds side by side (stacked states, vmapped step), on 4 devices: the batch axis moves one along
    for name, extra in configs.items():
        placed.clear()
        report["runs"][f"{name}_seeds_4"] = run("run", name, "--out", f"{out}/{name}_seeds_4", "--overwrite",
                                                "--seeds", "2", "--set", "train.devices=4", *common, *extra)
        report["split"][f"{name}_seeds_4"] = [len(placed), all(placed)]
    # a checkpoint of step 3 made on 4 devices, resumed on 1; and one made on 1, resumed on 4
    for name in configs:
        for saved, resumed in ((4, 1), (1, 4)):
            moved = f"{out}/{name}_moved_{saved}_to_{resumed}"
            shutil.copytree(f"{out}/{name}_{saved}", moved)
            shutil.rmtree(f"{moved}/checkpoints/6")
            report["runs"][f"{name}_moved_{saved}_to_{resumed}"] = run("run", "--resume", "--out", moved,
                                                                      "--set", f"train.devices={resumed}")
    # the batch really is split: each device holds a quarter of the examples
    mesh = data_parallel.mesh(4)
    xs = data_parallel.split(jnp.zeros((10, 8, 2)), 1, mesh)
    report["shard_shapes"] = sorted({tuple(s.data.shape) for s in xs.addressable_shards})
    bad = {"odd_batch": ["adding_t50_lstm", "--set", "train.devices=4", "--set", "train.batch_size=6"],
           "too_many": ["adding_t50_lstm", "--set", "train.devices=8"],
           "unsplittable": ["sunspots_gru", "--set", "train.devices=4"]}
    for case, args in bad.items():
        report["errors"][case] = run("run", *args, "--out", f"{out}/bad_{case}", "--set", "train.steps=1")
    print(json.dumps(report))
''')


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("data_parallel")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads(done.stdout.strip().splitlines()[-1])


def losses(folder):
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {(r["step"], k): v for r in records for k, v in r.items()
            if k == "loss" or (k.startswith("eval_") and isinstance(v, float))}


def assert_same_run(a, b):
    la, lb = losses(a), losses(b)
    assert la.keys() == lb.keys() and la
    for k in la:
        np.testing.assert_allclose(la[k], lb[k], rtol=2e-5, atol=1e-6, err_msg=str(k))


@pytest.mark.slow
def test_four_devices_give_the_losses_of_one(report):
    out, r = report
    assert r["devices"] == 4
    assert r["shard_shapes"] == [[10, 2, 2]]
    for name in ("adding_t50_lstm", "charlm_gru"):  # a batch of sequences; streams with a carried state
        assert r["runs"][f"{name}_1"][0] == 0 and r["runs"][f"{name}_4"][0] == 0, r["runs"]
        assert r["split"][f"{name}_1"] == [0, True]  # one device: nothing placed
        count, all_split = r["split"][f"{name}_4"]
        assert count >= 6 and all_split  # every batch (and the carry) split across the 4 devices
        assert json.loads((out / f"{name}_4" / "summary.json").read_text())["devices"] == 4
        assert_same_run(out / f"{name}_1", out / f"{name}_4")
    # a carried state split without dropout: each device's share of the loss, averaged
    assert r["runs"]["charlm_gru_nodrop_4"][0] == 0, r["runs"]
    assert_same_run(out / "charlm_gru_nodrop_1", out / "charlm_gru_nodrop_4")


@pytest.mark.slow
def test_the_gradients_are_summed_across_devices_once_not_at_every_time_step(report):
    """Each device's share of the loss (data_parallel.per_device): no collective inside the compiled loops. With
    dropout the loss is partitioned whole (the one-device run's masks), and XLA sums inside the loop."""
    counts = report[1]["loop_collectives"]
    assert counts["adding"] == 0 and counts["charlm_nodrop"] == 0, counts
    assert counts["charlm_dropout"] > 0, counts


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adding_t50_lstm", "charlm_gru_nodrop"])
def test_both_replica_loops_around_each_devices_share_give_the_same_steps(report, name):
    loops = report[1]["replica_loops"]
    base = name.removesuffix("_nodrop")
    np.testing.assert_allclose(loops[f"{base}_vmap"], loops[f"{base}_map"], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adding_t50_lstm", "charlm_gru"])
def test_seeds_side_by_side_on_four_devices_give_each_seeds_run(report, name):
    out, r = report
    assert r["runs"][f"{name}_seeds_4"][0] == 0, r["runs"]
    count, all_split = r["split"][f"{name}_seeds_4"]
    assert count >= 6 and all_split
    # seed 0 of the two, split across 4 devices, is the single run of seed 0 on one device
    assert_same_run(out / f"{name}_1", out / f"{name}_seeds_4" / "seed-0")
    summary = json.loads((out / f"{name}_seeds_4" / "summary.json").read_text())
    assert summary["devices"] == 4 and summary["spread"]["eval_loss"]["n"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adding_t50_lstm", "charlm_gru"])
@pytest.mark.parametrize("saved, resumed", [(4, 1), (1, 4)])
def test_a_checkpoint_resumes_on_another_number_of_devices(report, name, saved, resumed):
    out, r = report
    assert r["runs"][f"{name}_moved_{saved}_to_{resumed}"][0] == 0, r["runs"]
    assert_same_run(out / f"{name}_{saved}", out / f"{name}_moved_{saved}_to_{resumed}")


@pytest.mark.slow
@pytest.mark.parametrize("case, match", [
    ("odd_batch", "train.batch_size: 6 does not divide across 4 devices"),
    ("too_many", "train.devices: 8 asked for, but 4 cpu devices are visible"),
    ("unsplittable", "the sunspots experiment draws its batches inside the training step"),
])
def test_device_settings_that_cannot_work_are_one_line_and_status_2(report, case, match):
    status, message = report[1]["errors"][case]
    assert status == 2 and match in message and "Traceback" not in message
    assert message.count("\n") == 0 or message.splitlines()[-1].startswith("error:")


def test_batch_axes_that_do_not_match_the_batch_are_a_clear_error():
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh

    from jaxrnn.experiment import data_parallel

    mesh = Mesh(np.asarray(jax.devices()[:1]), (data_parallel.AXIS,))
    batch = (jnp.ones((5, 4, 2)), jnp.ones((4,)))
    placed = data_parallel.split(batch, (1, 0), mesh)
    assert [x.shape for x in placed] == [(5, 4, 2), (4,)]
    with pytest.raises(ValueError, match=r"batch_axes \(1, 0, None\) do not match the batch's structure"):
        data_parallel.split(batch, (1, 0, None), mesh)

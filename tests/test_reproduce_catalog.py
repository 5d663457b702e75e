"""`cvlab reproduce`'s catalog, measures and rules (cvlab/reproduce).

- The catalog loads; every item names a registered measure and rule, a known part and
  notebook, run sets that exist and run in the item's profiles; a broken catalog is refused
  in one line naming the item.
- Each rule kind fails on a doctored value that breaks it and holds on one that keeps it.
- The in-process measures give the course's printed values for cvlab's code, and a doctored
  implementation (monkeypatched) makes its items not hold.
- The run-reading measures, on run folders written like `cvlab train` writes them
  (conftest's make_run / make_sweep): each experiment claim holds on runs that keep it and
  fails on doctored ones.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_run, make_sweep, model_config

from cvlab.reproduce import catalog as catalog_module
from cvlab.reproduce.catalog import (
    NOTEBOOKS,
    PARTS,
    CatalogError,
    MeasureContext,
    evaluate,
    load_catalog,
)
from cvlab.reproduce.measures import get_measure, measure_names
from cvlab.reproduce.rules import get_pattern, get_rule, judge

CATALOG = load_catalog()
ITEMS = {item.id: item for item in CATALOG.items}
# In-process items left out of the fast test: the naive conv on 100 images (fast vs naive,
# ~5 s) and the two dropout FC gradient checks (~1 s each); their code paths are the ones of
# the items that run.
SLOW = {"cnn.fast.conv", "dropout.fc_net.gradcheck.keep0_75", "dropout.fc_net.gradcheck.keep0_5"}


def quick() -> MeasureContext:
    return MeasureContext(profile="quick")


# --- the catalog ------------------------------------------------------------------------------


def test_the_catalog_covers_every_notebook_and_part():
    assert {item.notebook for item in CATALOG.items} == set(NOTEBOOKS)
    assert CATALOG.parts == list(PARTS)
    assert len(ITEMS) == len(CATALOG.items) > 90
    for item in CATALOG.items:
        get_measure(item.measure["name"])
        get_rule(item.rule["kind"])
        assert item.source and item.what and item.section
        assert item.id.startswith(f"{item.part}.")


def test_every_run_set_an_item_reads_runs_in_the_items_profiles():
    for item in CATALOG.items:
        for name in item.run_names:
            for profile in item.profiles:
                assert CATALOG.runs[name].command(profile) is not None, (item.id, profile)
    assert {run.name for run in CATALOG.runs_for(CATALOG.items, "quick")} == {
        name for name, run in CATALOG.runs.items() if run.quick is not None}
    assert CATALOG.runs["bn_deep"].command("full") == ["experiment=bn_deep", "dataset=cifar10"]


def test_items_without_the_quick_profile_say_why():
    full_only = [item for item in CATALOG.items if "quick" not in item.profiles]
    assert {item.part for item in full_only} >= {"pytorch"}
    assert all(item.not_run_reason for item in full_only)
    result = evaluate(ITEMS["pytorch.challenge.val_acc"], quick())
    assert result.state == "not_run" and "GPU" in result.detail


CATALOG_DATA = yaml.safe_load(catalog_module.CATALOG_PATH.read_text())


def write_catalog(tmp_path: Path, change) -> Path:
    """The package's catalog with `change(data)` applied, written to tmp_path."""
    data = copy.deepcopy(CATALOG_DATA)
    change(data)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
    return path


def _set(index: int, key: str, value):
    def change(data):
        data["items"][index][key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set(0, "measure", {"name": "fc_net_intial_loss"}), "unknown measure 'fc_net_intial_loss'"),
    (_set(0, "rule", {"kind": "closeish"}), "unknown rule kind 'closeish'; valid: close"),
    (_set(0, "notebook", "Batchnorm"), "notebook 'Batchnorm' is not one of"),
    (_set(0, "course", "about 2.3"), "rule close cannot judge course 'about 2.3'"),
    (_set(0, "rule", {"kind": "threshold", "op": "=>", "bound": 1}), "op '=>' is not one of"),
    (_set(0, "profiles", ["full"]), "say why in `not_run_reason`"),
    (_set(0, "colour", "red"), "unknown key(s) colour"),
    (_set(0, "id", "fc.initial_loss"), "the id must start with a part"),
    (_set(1, "id", "layers.fc_net.initial_loss.reg0"), "the id is used twice"),
    (lambda data: data["items"][-1]["measure"].update(run="caption_overfitt"),
     "reads run set 'caption_overfitt', which `runs:` does not name"),
    (lambda data: data["runs"]["caption_overfit"].update(quick=None),
     "is shown in profile quick but run set caption_overfit does not run there"),
    (lambda data: data["items"][30]["rule"].update(kind="pattern", name="robustt"),
     "unknown pattern 'robustt'"),
])
def test_a_broken_catalog_is_refused_in_one_line_naming_the_item(tmp_path, change, message):
    with pytest.raises(CatalogError) as caught:
        load_catalog(write_catalog(tmp_path, change))
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert text.startswith(("item ", "run set "))


def test_unknown_names_raise_value_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match="valid: .*norm_forward_stats"):
        get_measure("norm_forward")
    with pytest.raises(ValueError, match="valid: close, pattern, range, threshold"):
        get_rule("between")
    with pytest.raises(ValueError, match="valid: .*robust"):
        get_pattern("steady")
    assert "metric_gap" in measure_names()


# --- the rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, course, kept, broken", [
    ({"kind": "close", "atol": 1e-8}, [1.0, 2.0], [1.0 + 5e-9, 2.0], [1.0, 2.0 + 2e-8]),
    ({"kind": "close", "rtol": 1e-3}, 100.0, 100.05, 100.2),
    ({"kind": "close", "atol": 1e-9}, {"a": 0.0}, {"a": 1e-10}, {"a": float("nan")}),
    ({"kind": "range", "low": 0.0, "high": 1e-8}, {"dx": 1.7e-9, "db": 0.0},
     {"dx": 3e-9, "db": 0.0}, {"dx": 3e-9, "db": 2e-8}),
    ({"kind": "range"}, [2.2, 2.4], 2.3, 2.5),
    ({"kind": "threshold", "op": ">", "bound": 0.05}, 0.1, 0.06, 0.05),
    ({"kind": "threshold", "op": "<=", "bound": 1e-9}, 0.0, 0.0, 1e-6),
    ({"kind": "threshold", "op": ">=", "bound": "course"}, 0.7, 0.71, 0.69),
])
def test_each_rule_kind_holds_on_a_kept_value_and_fails_on_a_broken_one(spec, course, kept,
                                                                         broken):
    assert judge(kept, course, spec).held
    verdict = judge(broken, course, spec)
    assert not verdict.held and verdict.detail
    assert not judge(None, course, spec).held  # nothing measured never holds


def test_a_gradient_check_must_measure_every_printed_line():
    spec = {"kind": "range", "low": 0.0, "high": 1e-8}
    with pytest.raises(ValueError, match="differ from the course's"):
        judge({"dx": 1e-9}, {"dx": 1.7e-9, "dgamma": 7.4e-13}, spec)


def curves(batchnorm, baseline):
    scales = [1e-4, 1e-2, 1.0]
    return {"batchnorm": [list(p) for p in zip(scales, batchnorm)],
            "none": [list(p) for p in zip(scales, baseline)]}


ROBUST = {"kind": "pattern", "name": "robust", "normalized": "batchnorm", "baseline": "none",
          "fraction": 0.5, "x_max": 0.1, "chance": 0.1, "margin": 0.05}


@pytest.mark.parametrize("series, held", [
    (curves([0.30, 0.40, 0.12], [0.10, 0.35, 0.13]), True),   # the course's story
    (curves([0.15, 0.40, 0.12], [0.10, 0.35, 0.13]), False),  # batchnorm fails at 1e-4
    (curves([0.30, 0.40, 0.12], [0.30, 0.35, 0.13]), False),  # the baseline learns at 1e-4
])
def test_the_robust_pattern(series, held):
    assert judge(series, "text", ROBUST).held is held


def test_the_loss_and_spread_patterns():
    blows_up = {"kind": "pattern", "name": "exceeds_at_largest_x", "name_above": "none",
                "name_below": "batchnorm", "factor": 10.0}
    assert judge(curves([1.8, 1.3, 3.3], [2.3, 1.6, 2.8e7]), "", blows_up).held
    assert not judge(curves([1.8, 1.3, 3.3], [2.3, 1.6, 3.0]), "", blows_up).held
    flatter = {"kind": "pattern", "name": "flatter_than", "series": "layernorm",
               "reference": "batchnorm", "ratio": 0.75}
    ln = {"batchnorm": [[5, 0.40], [50, 0.84]], "layernorm": [[5, 0.57], [50, 0.81]]}
    assert judge(ln, "", flatter).held
    ln["layernorm"] = [[5, 0.30], [50, 0.84]]
    assert not judge(ln, "", flatter).held
    with pytest.raises(ValueError, match="no series 'layernorm'"):
        judge({"batchnorm": [[5, 0.4]]}, "", flatter)


# --- in-process measures: the course's values for cvlab's code --------------------------------


IN_PROCESS = [item for item in CATALOG.items if not item.run_names and item.id not in SLOW]


def test_the_in_process_items_give_the_course_values():
    results = {item.id: evaluate(item, quick()) for item in IN_PROCESS}
    not_held = {name: r.detail for name, r in results.items() if r.state != "held"}
    assert not_held == {}
    assert results["batchnorm.fc_net.initial_loss.reg0"].value == pytest.approx(
        2.2611955101340957, abs=1e-12)
    assert results["dropout.fc_net.initial_loss.keep0_5"].value == pytest.approx(
        2.30427592207859, abs=1e-12)
    assert results["cnn.three_layer.initial_loss.reg0"].value == pytest.approx(
        2.302586071243987, abs=1e-6)


def _held(item_id: str) -> bool:
    return evaluate(ITEMS[item_id], quick()).state == "held"


def test_a_wrong_running_mean_update_breaks_the_test_mode_items(monkeypatch):
    from cvlab import layers

    correct = layers.batchnorm_forward

    def swapped_momentum(x, gamma, beta, bn_param):
        """Batchnorm whose running statistics weigh the batch with `momentum` (0.9) instead
        of 1 - momentum."""
        before = {key: bn_param.get(key) for key in ("running_mean", "running_var")}
        out, cache = correct(x, gamma, beta, bn_param)
        if bn_param["mode"] == "train":
            m = bn_param.get("momentum", 0.9)
            for key, stat in (("running_mean", x.mean(axis=0)), ("running_var", x.var(axis=0))):
                old = before[key] if before[key] is not None else np.zeros(x.shape[1])
                bn_param[key] = (1 - m) * old + m * stat
        return out, cache

    assert _held("batchnorm.forward.test.mean") and _held("cnn.spatial_batchnorm.forward.test_std")
    monkeypatch.setattr(layers, "batchnorm_forward", swapped_momentum)
    assert not _held("batchnorm.forward.test.mean")
    assert not _held("batchnorm.forward.test.std")
    assert _held("batchnorm.forward.train.mean")  # train mode does not use them


def test_doctored_layers_break_their_items(monkeypatch):
    from cvlab import layers
    from cvlab.models import fc_net

    def unscaled_dropout(x, param):
        out, cache = layers.dropout.dropout_forward(x, param)  # the module's own function
        return (out * param["p"] if param["mode"] == "train" else out), cache

    monkeypatch.setattr(layers, "dropout_forward", unscaled_dropout)
    assert not _held("dropout.forward.keep0_25.train_mean")
    assert _held("dropout.forward.keep0_25.zero_fraction")

    def flipped_conv(x, w, b, conv_param):
        return layers.conv_naive.conv_forward_naive(x, w[:, :, ::-1, ::-1], b, conv_param)

    monkeypatch.setattr(layers, "conv_forward_naive", flipped_conv)
    assert not _held("cnn.conv_naive.forward")

    def no_gamma_gradient(dout, cache):
        dx, dgamma, dbeta = layers.batchnorm.batchnorm_backward_alt(dout, cache)
        return dx, 0 * dgamma, dbeta

    monkeypatch.setattr(fc_net, "batchnorm_backward_alt", no_gamma_gradient)
    assert not _held("batchnorm.fc_net.gradcheck.reg0.gamma_beta")
    assert _held("batchnorm.fc_net.initial_loss.reg0")


def test_a_measure_that_raises_does_not_hold(monkeypatch):
    from cvlab import layers

    def broken(*args, **kwargs):
        raise IndexError("index 3 is out of bounds")

    monkeypatch.setattr(layers, "layernorm_forward", broken)
    result = evaluate(ITEMS["batchnorm.layernorm.forward.mean"], quick())
    assert result.state == "not_held"
    assert result.detail == "measure failed: IndexError: index 3 is out of bounds"


# --- run-reading measures on run folders --------------------------------------------------------


def add_metrics(run_dir: Path, **metrics) -> None:
    """Merge metrics into a run's summary.json (what make_run does not write)."""
    from cvlab.records.summary import write_summary

    write_summary(run_dir, metrics=metrics)


def context(**folders: Path) -> MeasureContext:
    return MeasureContext(profile="quick", run_folders={k: [v] for k, v in folders.items()})


def state(item_id: str, ctx: MeasureContext) -> str:
    return evaluate(ITEMS[item_id], ctx).state


def bn_deep_sweep(root: Path, batchnorm_acc: float, baseline_acc: float) -> Path:
    sweep = make_sweep(root, [{"final_acc": batchnorm_acc}, {"final_acc": baseline_acc,
                                                             "baseline": True}])
    for job, acc, loss in ((0, batchnorm_acc, 1.0), (1, baseline_acc, 1.5)):
        add_metrics(sweep / str(job), final_train_acc=acc, final_loss_mean=loss)
    return sweep


def test_bn_deep_holds_when_batchnorm_trains_faster_and_fails_when_not(tmp_path):
    kept = context(bn_deep=bn_deep_sweep(tmp_path / "kept", 0.78, 0.66))
    assert state("batchnorm.deep.trains_faster", kept) == "held"
    assert state("batchnorm.deep.loss_lower", kept) == "held"
    doctored = context(bn_deep=bn_deep_sweep(tmp_path / "doctored", 0.66, 0.66))
    assert state("batchnorm.deep.trains_faster", doctored) == "not_held"


def weight_scale_sweep(root: Path, batchnorm_acc: list[float], baseline_acc: list[float],
                       baseline_last_loss: float) -> Path:
    jobs = []
    for scale, bn, base in zip((1e-4, 1e-2, 1.0), batchnorm_acc, baseline_acc):
        jobs.append({"model": model_config(weight_scale=scale), "final_acc": bn / 0.8,
                     "losses": [2.0, 1.5], "iterations_per_epoch": 1, "epochs": 2})
        last = baseline_last_loss if scale == 1.0 else 1.5
        jobs.append({"model": model_config(weight_scale=scale), "final_acc": base / 0.8,
                     "baseline": True, "losses": [2.0, last], "iterations_per_epoch": 1,
                     "epochs": 2})
    return make_sweep(root, jobs)


def test_the_weight_scale_claims_on_kept_and_doctored_sweeps(tmp_path):
    kept = context(weight_scale_bn=weight_scale_sweep(
        tmp_path / "kept", [0.30, 0.40, 0.15], [0.10, 0.35, 0.12], 4e7))
    assert state("batchnorm.weight_scale.robust", kept) == "held"
    assert state("batchnorm.weight_scale.baseline_loss_blows_up", kept) == "held"
    doctored = context(weight_scale_bn=weight_scale_sweep(
        tmp_path / "doctored", [0.10, 0.40, 0.15], [0.10, 0.35, 0.12], 2.0))
    assert state("batchnorm.weight_scale.robust", doctored) == "not_held"
    assert state("batchnorm.weight_scale.baseline_loss_blows_up", doctored) == "not_held"


def batch_size_sweep(root: Path, normalization: str, accs: dict[int, float]) -> Path:
    jobs = [{"model": model_config(normalization=normalization), "batch_size": 5,
             "baseline": True, "final_acc": 0.6}]
    jobs += [{"model": model_config(normalization=normalization), "batch_size": size,
              "final_acc": acc} for size, acc in accs.items()]
    return make_sweep(root, jobs)


def test_the_batch_size_claims_on_kept_and_doctored_sweeps(tmp_path):
    bn = batch_size_sweep(tmp_path / "bn", "batchnorm", {5: 0.40, 10: 0.62, 50: 0.84})
    ln = batch_size_sweep(tmp_path / "ln", "layernorm", {5: 0.57, 10: 0.64, 50: 0.81})
    kept = context(batch_size_bn=bn, batch_size_ln=ln)
    assert state("batchnorm.batch_size.degrades", kept) == "held"
    assert state("batchnorm.layernorm.batch_size.less_dependent", kept) == "held"
    flat_bn = batch_size_sweep(tmp_path / "flat", "batchnorm", {5: 0.80, 10: 0.82, 50: 0.84})
    ln_like_bn = batch_size_sweep(tmp_path / "ln2", "layernorm", {5: 0.40, 10: 0.62, 50: 0.84})
    assert state("batchnorm.batch_size.degrades", context(batch_size_bn=flat_bn)) == "not_held"
    assert state("batchnorm.layernorm.batch_size.less_dependent",
                 context(batch_size_bn=bn, batch_size_ln=ln_like_bn)) == "not_held"


def dropout_sweep(root: Path, train: tuple[float, float], val: tuple[float, float]) -> Path:
    jobs = [{"model": model_config(normalization="none", dropout_keep_ratio=keep)}
            for keep in (1.0, 0.25)]
    sweep = make_sweep(root, jobs)
    for job in (0, 1):
        add_metrics(sweep / str(job), final_train_acc=train[job], best_val_acc=val[job])
    return sweep


def test_the_dropout_claims_on_kept_and_doctored_sweeps(tmp_path):
    kept = MeasureContext(profile="full", run_folders={
        "dropout": [dropout_sweep(tmp_path / "kept", (0.99, 0.90), (0.32, 0.33))]})
    assert state("dropout.regularization.lower_train_acc", kept) == "held"
    assert state("dropout.regularization.val_kept", kept) == "held"
    doctored = MeasureContext(profile="full", run_folders={
        "dropout": [dropout_sweep(tmp_path / "doctored", (0.99, 0.99), (0.32, 0.20))]})
    assert state("dropout.regularization.lower_train_acc", doctored) == "not_held"
    assert state("dropout.regularization.val_kept", doctored) == "not_held"
    assert state("dropout.regularization.val_kept", MeasureContext(
        profile="quick", run_folders=kept.run_folders)) == "not_run"


def test_the_cnn_claims_on_kept_and_doctored_runs(tmp_path):
    from cvlab.records.state import save_weights

    cnn = model_config(type="three_layer_convnet")
    overfit = make_run(tmp_path / "overfit", model=cnn, final_acc=0.99)
    add_metrics(overfit, best_val_acc=0.25)
    one_epoch = make_run(tmp_path / "one_epoch", model=cnn, final_acc=0.48)
    add_metrics(one_epoch, final_train_acc=0.48)
    save_weights(one_epoch / "model.npz", "numpy", "three_layer_convnet",
                 {"params": {"W1": np.zeros((32, 3, 7, 7)), "b1": np.zeros(32)}})
    kept = context(cnn_overfit=overfit, cnn_one_epoch=one_epoch)
    for item in ("cnn.overfit.train_acc", "cnn.overfit.gap", "cnn.one_epoch.train_acc",
                 "cnn.one_epoch.filters"):
        assert state(item, kept) == "held", item
    add_metrics(overfit, best_val_acc=0.95)  # no longer overfitting
    add_metrics(one_epoch, final_train_acc=0.35)
    save_weights(one_epoch / "model.npz", "numpy", "three_layer_convnet",
                 {"params": {"W1": np.zeros((16, 3, 5, 5))}})
    doctored = context(cnn_overfit=overfit, cnn_one_epoch=one_epoch)
    for item in ("cnn.overfit.gap", "cnn.one_epoch.train_acc", "cnn.one_epoch.filters"):
        assert state(item, doctored) == "not_held", item


def conv_demo_run(root: Path, doctor: bool) -> Path:
    from cvlab.models.conv_demo import apply_demo_filters

    run = make_run(root)
    inputs = np.random.RandomState(0).randint(0, 256, size=(2, 3, 9, 11)).astype(float)
    outputs = apply_demo_filters(inputs)
    if doctor:  # an edge filter applied as a convolution (flipped) and a wrong gray weight
        outputs[:, 1] = 256 - outputs[:, 1]
        outputs[:, 0] += 0.1 * inputs[:, 0]
    np.save(run / "conv_demo_inputs.npy", inputs)
    np.save(run / "conv_demo_outputs.npy", outputs)
    return run


def test_the_conv_demo_claims_and_their_figure(tmp_path):
    kept = MeasureContext(profile="quick", out_dir=tmp_path / "figures",
                          run_folders={"conv_demo": [conv_demo_run(tmp_path / "kept", False)]})
    result = evaluate(ITEMS["cnn.conv_demo.grayscale"], kept)
    assert result.state == "held" and result.figure.is_file()
    assert state("cnn.conv_demo.edges", kept) == "held"
    doctored = context(conv_demo=conv_demo_run(tmp_path / "doctored", True))
    assert state("cnn.conv_demo.grayscale", doctored) == "not_held"
    assert state("cnn.conv_demo.edges", doctored) == "not_held"


def caption_run(root: Path, last_loss: float, generated: str) -> Path:
    run = make_run(root, model={"type": "captioning", "cell_type": "rnn"},
                   losses=[5.0, 1.0, last_loss])
    sample = {"generated": f"{generated} <END>",
              "references": ["<START> a small red circle <END>", "<START> a red circle <END>"]}
    (run / "samples.json").write_text(json.dumps({"splits": {"train": [sample] * 4}}))
    return run


def test_the_captioning_claims_on_kept_and_doctored_runs(tmp_path):
    kept = context(caption_overfit=caption_run(tmp_path / "kept", 0.013, "a red circle"))
    assert state("captioning.overfit.final_loss", kept) == "held"
    assert state("captioning.overfit.train_samples", kept) == "held"
    doctored = context(caption_overfit=caption_run(tmp_path / "bad", 0.5, "a blue square"))
    assert state("captioning.overfit.final_loss", doctored) == "not_held"
    assert state("captioning.overfit.train_samples", doctored) == "not_held"


def test_missing_runs_are_not_run_and_failed_runs_do_not_hold(tmp_path):
    assert state("cnn.overfit.train_acc", context()) == "not_run"
    never_started = evaluate(ITEMS["cnn.overfit.train_acc"],
                             context(cnn_overfit=tmp_path / "never"))
    assert never_started.state == "not_run" and "did not run" in never_started.detail
    failed = make_run(tmp_path / "failed", status="failed", final_acc=0.99)
    result = evaluate(ITEMS["cnn.overfit.train_acc"], context(cnn_overfit=failed))
    assert result.state == "not_held" and "failed" in result.detail


def test_a_sweep_measure_draws_its_figure_once(tmp_path):
    ctx = MeasureContext(profile="quick", out_dir=tmp_path / "figures", run_folders={
        "weight_scale_bn": [weight_scale_sweep(tmp_path / "ws", [0.3, 0.4, 0.15],
                                               [0.1, 0.35, 0.12], 4e7)]})
    first = evaluate(ITEMS["batchnorm.weight_scale.robust"], ctx)
    second = evaluate(ITEMS["batchnorm.weight_scale.baseline_loss_blows_up"], ctx)
    assert first.figure == second.figure == tmp_path / "figures" / "weight_scale_bn.png"
    assert first.figure.stat().st_size > 10_000

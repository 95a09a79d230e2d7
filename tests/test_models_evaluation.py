"""Patient-level cross-validation: folds never split a stay, the test fold is only scored, the MLP stops on stays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from vigil.models.evaluation import Dataset, cross_validate, fit_calibrated, patient_folds
from vigil.models.preprocessing import stay_holdout
from vigil.models.reporting import merge_evaluations, row_label
from vigil.models.zoo import MlpRisk

FIXTURE = Path(__file__).parent / "fixtures" / "physionet2019"


def synthetic_stays(count: int = 240, septic_share: float = 0.25, seed: int = 0) -> Dataset:
    """Stays of 20-60 hours; in septic ones the first feature rises from a random onset on, the rest is noise."""
    rng = np.random.default_rng(seed)
    X, y, stays = [], [], []
    for stay in range(count):
        hours = int(rng.integers(20, 60))
        labels = np.zeros(hours, dtype=np.int8)
        if rng.random() < septic_share:
            labels[int(rng.integers(5, hours)) :] = 1
        X.append(np.column_stack([1.5 * labels + rng.normal(size=hours), rng.normal(size=(hours, 3))]))
        y.append(labels)
        stays.append(np.full(hours, f"s{stay:04d}"))
    y_all = np.concatenate(y)
    rules = {
        "news2": rng.integers(0, 8, len(y_all)).astype(float),
        "qsofa": rng.integers(0, 3, len(y_all)).astype(float),
    }
    return Dataset(np.concatenate(X).astype(np.float32), y_all, np.concatenate(stays), rules)


def test_folds_keep_stays_whole_and_spread_septic_stays():
    data = synthetic_stays()
    folds = patient_folds(data, 5, seed=0)
    fold_of_stay = {stay: set(folds[data.stays == stay]) for stay in np.unique(data.stays)}
    assert all(len(fold) == 1 for fold in fold_of_stay.values())
    septic = {stay for stay in np.unique(data.stays) if data.y[data.stays == stay].max() == 1}
    per_fold = [sum(1 for stay in septic if fold_of_stay[stay] == {k}) for k in range(5)]
    assert max(per_fold) - min(per_fold) <= 1


def test_the_test_fold_is_only_scored_never_learned_from():
    data = synthetic_stays()
    folds = patient_folds(data, 3, seed=0)
    # every hour of fold 0's septic stays labelled septic: the same stays stay septic, so the folds are unchanged
    relabelled_y = np.where((folds == 0) & data.in_septic_stay(), 1, data.y).astype(np.int8)
    flipped = Dataset(data.X, relabelled_y, data.stays, data.rules)
    (_, _, original), _ = cross_validate(data, ["decision_tree"], k=3, seed=0)
    (_, _, relabelled), _ = cross_validate(flipped, ["decision_tree"], k=3, seed=0)
    test = folds == 0
    assert np.array_equal(original.probability[test], relabelled.probability[test])
    assert np.array_equal(original.alarm[test], relabelled.alarm[test])
    assert not np.array_equal(original.probability[~test], relabelled.probability[~test])  # labels do matter


@pytest.mark.parametrize("model", ["lightgbm", "logistic"])
def test_calibrated_model_ranks_held_out_stays_and_has_a_threshold(model):
    data, held = synthetic_stays(seed=1), synthetic_stays(count=80, seed=2)
    fitted = fit_calibrated(model, data, seed=0)
    probability = fitted.probability(held.X, held.stays)
    assert 0.0 <= probability.min() and probability.max() <= 1.0 and 0.0 < fitted.threshold < 1.0
    assert roc_auc_score(held.y, probability) > 0.75


def test_mlp_keeps_the_epoch_with_the_lowest_loss_on_held_out_stays():
    data = synthetic_stays(seed=3)
    mlp = MlpRisk(seed=0, max_epochs=12, patience=3).fit(data.X, data.y, data.stays)
    curve = mlp.loss_curve()
    assert len(curve["train_log_loss"]) == len(curve["validation_log_loss"]) >= 1
    held = stay_holdout(data.stays, fraction=0.1, seed=0)
    kept_loss = log_loss(data.y[held], mlp.score(data.X[held], data.stays[held]), labels=[0, 1])
    assert kept_loss == pytest.approx(min(curve["validation_log_loss"]), rel=1e-6)


def test_evaluate_command_prints_every_model_and_rule_with_intervals(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil",
            "risk",
            "evaluate",
            str(FIXTURE),
            "--models",
            "decision_tree,lightgbm",
            "--folds",
            "2",
            "--bootstrap",
            "10",
            "--save",
            str(tmp_path / "run.json"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert {row["model"] for row in evaluation["table"]} == {"decision_tree", "lightgbm", "news2", "qsofa"}
    for row in evaluation["table"]:
        auroc = row["metrics"]["auroc"]
        assert auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
        assert len(row["folds"]["utility"]) == 2
    assert json.loads((tmp_path / "run.json").read_text())["stays"] == evaluation["stays"] == 20


def test_runs_of_model_subsets_merge_and_runs_of_other_folds_do_not():
    def run(models: list[str], seed: int = 0) -> dict:
        rows = [{"model": name, "kind": "rule" if name in ("news2", "qsofa") else "model"} for name in models]
        return {"stays": 20, "hours": 669, "folds": 5, "seed": seed, "bootstrap_replicates": 200, "table": rows}

    merged = merge_evaluations([run(["news2", "qsofa", "lightgbm"]), run(["news2", "qsofa", "gru"])])
    assert [row["model"] for row in merged["table"]] == ["news2", "qsofa", "lightgbm", "gru"]
    with pytest.raises(ValueError, match="seed"):
        merge_evaluations([run(["lightgbm"]), run(["gru"], seed=1)])


def test_a_model_on_the_vitals_features_is_its_own_row_beside_the_full_one():
    def run(features: str) -> dict:
        rows = [{"model": name, "kind": "rule" if name == "news2" else "model"} for name in ("news2", "lightgbm")]
        return {
            "stays": 20,
            "hours": 669,
            "folds": 5,
            "seed": 0,
            "bootstrap_replicates": 200,
            "features": features,
            "table": rows,
        }

    merged = merge_evaluations([run("full"), run("vitals")])
    assert [row_label(row) for row in merged["table"]] == ["news2 (rule)", "lightgbm", "lightgbm (vitals only)"]

"""`vigil risk`: sepsis risk models on PhysioNet 2019 Challenge files: evaluate, train, score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from vigil.cli.common import JsonFlag, emit, err, fail, refusing, save_json, stays_with_progress
from vigil.config import load_settings
from vigil.datasets.physionet import PsvFormatError
from vigil.models.features import FEATURE_SETS
from vigil.models.reporting import markdown_table
from vigil.models.risk import SepsisRiskModel, default_model
from vigil.models.scoring import score_directory

app = typer.Typer(
    help="Sepsis risk from hourly vitals and labs (PhysioNet 2019 Challenge format).", no_args_is_help=True
)
EVALUATION_FILE = "reports/risk-evaluation.json"
DataArgument = Annotated[Path, typer.Argument(help="a directory of .psv files or the .tar.gz")]
FeaturesOption = Annotated[
    str,
    typer.Option(
        "--features",
        help="full: every Challenge column (ICU stays); vitals: HR, SpO2, Temp, SBP/DBP/MAP, Resp, age, sex only",
    ),
]


@app.command("evaluate")
def evaluate_models(
    data: DataArgument,
    models: Annotated[str | None, typer.Option("--models", help="comma-separated; default all available")] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, max=10)] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=10, help="patient-bootstrap replicates")] = 200,
    save: Annotated[Path | None, typer.Option("--save", help=f"default VIGIL_HOME/{EVALUATION_FILE}")] = None,
    features: FeaturesOption = "full",
    as_json: JsonFlag = False,
) -> None:
    """Patient-level cross-validation of every model against the NEWS2 and qSOFA rules."""
    # scikit-learn takes about a second to import: only the commands that fit models load it
    from vigil.models.evaluation import Dataset, evaluate

    names = _model_names(models)
    dataset = Dataset.from_frame(stays_with_progress(data), _feature_set(features))
    with Progress(console=err) as progress:
        task = progress.add_task("cross-validating", total=len(names) * folds)
        result = evaluate(
            dataset,
            names,
            folds,
            seed,
            bootstrap,
            lambda message: progress.update(task, advance=1, description=message),
        )
    result["data"] = str(data)
    save_json(result, save or load_settings().home / EVALUATION_FILE)
    emit(result, as_json, markdown_table(result))


def _model_names(models: str | None) -> list[str]:
    """--models, each one available here (default: all of them)."""
    from vigil.models.zoo import available_models  # scikit-learn, as above

    names = [m.strip() for m in models.split(",")] if models else available_models()
    unknown = sorted(set(names) - set(available_models()))
    if unknown:
        fail(f"--models: unknown or unavailable {', '.join(unknown)}; available: {', '.join(available_models())}")
    return names


def _feature_set(features: str) -> str:
    """--features, one of FEATURE_SETS."""
    if features not in FEATURE_SETS:
        fail(f"--features: unknown {features!r}; choose from {', '.join(FEATURE_SETS)}")
    return features


@app.command("train")
def train(
    data: DataArgument,
    out: Annotated[Path, typer.Option("--out", help="where to write the model (JSON)")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    features: FeaturesOption = "full",
) -> None:
    """Train the calibrated LightGBM sepsis model on all of DATA."""
    from vigil.models.evaluation import train_shipped_model  # scikit-learn, as above

    feature_set = _feature_set(features)
    stays = stays_with_progress(data)
    with err.status(f"training LightGBM ({feature_set} features) on every stay"):
        model = train_shipped_model(stays, str(data), seed, feature_set)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    err.print(f"model written to {out} ({out.stat().st_size / 1e6:.1f} MB, threshold {model.threshold:.3f})")


@app.command("score")
def score(
    in_dir: Annotated[Path, typer.Argument(help="directory of Challenge .psv files")],
    out_dir: Annotated[Path, typer.Argument(help="where to write one output file per input file")],
    model: Annotated[Path | None, typer.Option("--model", help="default: the model shipped with Vigil")] = None,
) -> None:
    """Hourly sepsis probability and label for every row of every file, each from rows up to that hour."""
    if not in_dir.is_dir():
        fail(f"IN_DIR: {in_dir} is not a directory")
    with refusing(OSError, ValueError, option="--model"):
        risk_model = SepsisRiskModel.load(model) if model else default_model()
    with Progress(console=err, transient=True) as progress, refusing(PsvFormatError, ValueError):
        task = progress.add_task("reading", total=None)
        count = score_directory(in_dir, out_dir, risk_model, lambda n: progress.advance(task, n))
    err.print(f"scored {count} files into {out_dir}")

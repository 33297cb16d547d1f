"""``vigil train`` (options only; the body imports the trainer lazily).

The defaults here mirror ``trainer.fit.TrainConfig`` (a test holds them equal);
they are repeated because this module must not import the trainer at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from edge_agent.errors import VigilInputError
from vigil.cli.common import load_extra, one_line_errors

DEFAULTS = {
    "window": 128, "hop": 4, "model": "lstm", "units": "32,16", "loss": "mse", "center": True, "epochs": 50,
    "batch_size": 64, "patience": 10, "learning_rate": 3e-3, "lr_schedule": "plateau", "shape_scale": True,
    "windows_per_epoch": 2048, "validation_fraction": 0.2, "scaler": "minmax",
    "clip": None, "clean": "auto", "threshold": "pot", "false_alarms": "auto", "k": 3.0, "smoothing": None,
    "score": "mse", "seed": 0,
}

TRAIN_HELP = (
    "Fit an autoencoder on normal rows of DATA and write a run directory.\n"
    "\n"
    "The training rows are split in time: the first (1 - validation fraction) are fitted (the scaler sees only "
    "them); the held-out tail drives early stopping and sets the threshold. Prints one line per epoch. Writes "
    "RUN/model.keras, RUN/run.json, RUN/train_rows.npy and RUN/loss.png.\n"
    "\n"
    "Defaults: a 128-row window scored every 4th row (--hop 4): long enough to hold a cycle, or a good part of "
    "one, of typical machine or body signals sampled at tens to hundreds of Hz, at a quarter of the hop-1 compute "
    "in training and on the device (alarm delay at most 3 rows). A training slice too short for the window gets a "
    "shorter one (about one period of the data, at least 16 rows), and says so. The model reconstructs each "
    "window's shape around its own mean (--center), divided by the typical size of the deviations in training "
    "(--shape-scale), with Adam 3e-3 halved when the validation loss stalls (--lr-schedule plateau) and at most 2048 "
    "windows per epoch (--windows-per-epoch); it prints its skill ratio "
    "(held-out error / error of repeating each window's mean; above 0.8 it warns and names the likely cause). "
    "Threshold: calibrated to a "
    "false-alarm budget (--false-alarms auto: the stricter of 1/day and 1 per 1000 windows) on the held-out "
    "windows by a peaks-over-threshold (extreme value) fit, no smoothing. Constant features are reported and "
    "scored against their resolution; --clean auto drops training windows an IsolationForest isolates far beyond "
    "the rest.\n"
    "\n"
    "Example: vigil train ecg.txt --columns 1,2 --train-rows 0:1833 --out runs/ecg\n"
)


def train(
    data: Path = typer.Argument(..., help="Data file: CSV (header), whitespace TXT, NPY or WAV."),
    out: Path = typer.Option(..., "--out", help="Run directory to write (an existing run there is replaced)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Feature columns a,b (names; headerless files: "
        "0,1,...). Default: all but the timestamp."),
    train_rows: Optional[str] = typer.Option(None, "--train-rows", help="START:END normal rows to train on (0-based "
        "data rows, END exclusive). Default: all rows."),
    timestamp_column: Optional[str] = typer.Option(None, "--timestamp-column", help="Column holding time stamps "
        "(default: one named timestamp/time/date/datetime, or ISO datetimes)."),
    window: int = typer.Option(DEFAULTS["window"], "--window", help="Window length in rows."),
    hop: int = typer.Option(DEFAULTS["hop"], "--hop", help="Rows between the starts of consecutive windows (1 = score "
        "every row)."),
    model: str = typer.Option(DEFAULTS["model"], "--model", help="lstm (LSTM autoencoder), dense (faster for long "
        "windows) or aer (LSTM autoencoder with regression, Wong et al. 2022: reconstructs the window's inner rows, "
        "predicts its first and last row, scores both halves; edge_agent/core/aer.py)."),
    units: str = typer.Option(DEFAULTS["units"], "--units", help="Encoder layer sizes, outermost first; the last is "
        "the code size."),
    loss: str = typer.Option(DEFAULTS["loss"], "--loss", help="Training loss: mse or mae."),
    center: bool = typer.Option(DEFAULTS["center"], "--center/--no-center", help="Level pass-through: the network "
        "reconstructs each window's deviation from its own mean and the mean is added back (on slow or drifting "
        "signals it otherwise spends itself on the level; benchmarks/notes/skill.md)."),
    epochs: int = typer.Option(DEFAULTS["epochs"], "--epochs", help="Maximum epochs (early stopping usually ends "
        "sooner)."),
    batch_size: int = typer.Option(DEFAULTS["batch_size"], "--batch-size", help="Windows per training step."),
    patience: int = typer.Option(DEFAULTS["patience"], "--patience", help="Stop after this many epochs without a "
        "better validation loss (0 = never stop early); the best weights are kept."),
    learning_rate: float = typer.Option(DEFAULTS["learning_rate"], "--learning-rate", help="Adam learning rate."),
    lr_schedule: str = typer.Option(DEFAULTS["lr_schedule"], "--lr-schedule", help="plateau (halve the learning rate "
        "when the validation loss stalls) or constant."),
    shape_scale: bool = typer.Option(DEFAULTS["shape_scale"], "--shape-scale/--no-shape-scale", help="With --center: "
        "the network sees each window's deviations from its mean divided by their typical size in training (a "
        "fixed per-feature scale inside the model), so slow or spiky signals with small in-window deviations are "
        "learnt too (benchmarks/notes/skill.md)."),
    windows_per_epoch: int = typer.Option(DEFAULTS["windows_per_epoch"], "--windows-per-epoch", help="Training "
        "windows per epoch: a longer series is seen in slices of this many (reshuffled, every window comes round), "
        "so early stopping checks at the same pace on long and short series."),
    validation_fraction: float = typer.Option(DEFAULTS["validation_fraction"], "--validation-fraction", help="Held-out "
        "tail of the training rows (early stopping and threshold)."),
    scaler: str = typer.Option(DEFAULTS["scaler"], "--scaler", help="minmax, standard or robust (median / "
        "interquartile range), fitted on the fitted rows only. A constant feature is scaled by its resolution "
        "(smallest step), so any departure from it alarms."),
    clip: Optional[float] = typer.Option(DEFAULTS["clip"], "--clip", help="Clip scaled values MARGIN training-range "
        "widths beyond the training range (device and trainer alike), so a reading far out of range cannot produce "
        "runaway scores. Default: off."),
    clean: str = typer.Option(DEFAULTS["clean"], "--clean", help="IsolationForest pre-filter of the training windows: "
        "auto (drop windows isolated far beyond the rest: more than 5 robust sigmas above the median score, at most "
        "5%), off, or contamination=F (drop the most isolated fraction F)."),
    threshold: str = typer.Option(DEFAULTS["threshold"], "--threshold", help="pot (calibrated to --false-alarms), "
        "mean+k*std, percentile:P, max (held-out normal windows), or best-f1 / pr-balance (need --labels)."),
    false_alarms: str = typer.Option(DEFAULTS["false_alarms"], "--false-alarms", help="False-alarm budget of "
        "--threshold pot: N/day, N/week, N/h, N/min (needs a timestamp column for the sample rate) or N/window, "
        "N/1000windows. Default auto: the stricter of 1/day (about what one asset's operator accepts) and 0.001 per "
        "window (what mean+3 std gives for Gaussian scores; the only one without a sample rate). The expected rate is "
        "printed and stored in run.json."),
    k: float = typer.Option(DEFAULTS["k"], "--k", help="k of mean+k*std."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label file for best-f1 / pr-balance (CSV start,end; "
        "Telemanom; NAB; discord labels.json)."),
    label_rows: Optional[str] = typer.Option(None, "--label-rows", help="START:END rows of DATA the labels describe "
        "(default: the rows after --train-rows)."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Channel id in a Telemanom label file."),
    series: Optional[str] = typer.Option(None, "--series", help="Series key in a NAB / discord label file (default: "
        "taken from DATA's path)."),
    smoothing: Optional[float] = typer.Option(DEFAULTS["smoothing"], "--smoothing", help="EWMA alpha in (0, 1] over "
        "consecutive window scores (1 = off)."),
    score: str = typer.Option(DEFAULTS["score"], "--score", help="Window score: mse or mae of the reconstruction."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Per-feature score weights w1,w2,... (default: "
        "equal)."),
    features: str = typer.Option("raw", "--features", help="raw (the model reads the samples) or spectral (one "
        "row of FFT band energies, RMS, kurtosis and crest factor per frame of samples; --window/--hop then count "
        "frames; for vibration sampled at hundreds of Hz and up)."),
    seed: int = typer.Option(DEFAULTS["seed"], "--seed", help="Seed for weights, shuffling and the baseline: same "
        "seed, same run."),
    extra_normal: Optional[list[Path]] = typer.Option(None, "--extra-normal", help="A capture (.json or .npy from "
        "`vigil captures pull`, or a directory of them) an operator judged normal: its rows are fitted too, before "
        "DATA's rows; the held-out tail stays DATA's. Repeatable."),
    verbose: bool = typer.Option(False, "--verbose", help="Show TensorFlow's own log lines (hidden by default: they "
        "look like errors but are not)."),
) -> None:
    _run_train(locals())


train.__doc__ = TRAIN_HELP


@one_line_errors("train")
def _run_train(opts: dict) -> None:
    from edge_agent.readers import parse_columns, parse_rows

    cfg_kwargs = dict(opts)
    if cfg_kwargs.pop("verbose"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # read by TensorFlow at import, which happens below
        os.environ["VIGIL_TF_VERBOSE"] = "1"
    cfg_kwargs.update(
        columns=parse_columns(opts["columns"]),
        train_rows=parse_rows(opts["train_rows"]),
        label_rows=parse_rows(opts["label_rows"]),
        units=tuple(int(u) for u in _numbers(opts["units"], "units", int)),
        weights=None if opts["weights"] is None else [float(w) for w in _numbers(opts["weights"], "weights", float)],
        model=opts["model"].strip().lower(), loss=opts["loss"].strip().lower(),
        score=opts["score"].strip().lower(), scaler=opts["scaler"].strip().lower(),
        features=opts["features"].strip().lower(),
    )
    mod = load_extra("train", "train", "trainer.fit")
    extra = cfg_kwargs.pop("extra_normal", None)
    if extra:
        from vigil.cli.captures_cmds import train_with_extra_normal

        run = train_with_extra_normal(mod, cfg_kwargs, extra)
    else:
        run = mod.run_train(mod.TrainConfig(**cfg_kwargs, echo=typer.echo))
    typer.echo(f"next: vigil evaluate {run.path} DATA --labels LABELS   or   "
               f"vigil convert {run.path} --out MODEL.vigil")


def _numbers(text: str, key: str, kind: type) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise VigilInputError(f"--{key} must be comma-separated numbers, got {text!r}", key=key)
    return values


def register(app: typer.Typer) -> None:
    """Add ``vigil train`` to the ``vigil`` app."""
    app.command("train", help=TRAIN_HELP)(train)

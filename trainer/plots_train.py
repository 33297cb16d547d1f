"""The training loss curve (``RUN/loss.png``)."""

from __future__ import annotations

from pathlib import Path


def plot_loss(history: dict[str, list[float]], path: str | Path, title: str = "training") -> Path:
    """Training and validation loss per epoch, log scale, best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a build server or a headless workstation
    import matplotlib.pyplot as plt

    loss, val = history.get("loss", []), history.get("val_loss", [])
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    epochs = range(1, len(loss) + 1)
    ax.plot(epochs, loss, marker="o", ms=3, label="training loss (fitted windows)")
    if val:
        ax.plot(range(1, len(val) + 1), val, marker="o", ms=3, label="validation loss (held-out windows)")
        best = min(range(len(val)), key=val.__getitem__)
        ax.axvline(best + 1, color="grey", ls="--", lw=1, label=f"best epoch {best + 1} (weights kept)")
    if loss and min(loss + val) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

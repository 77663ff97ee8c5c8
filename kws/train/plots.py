"""Training curves as PNG (loss and accuracy per epoch)."""

from __future__ import annotations

from pathlib import Path

from kws.plotting import pyplot, save_png


def plot_training(history: list[dict], path: str | Path) -> Path:
    """Loss and accuracy per epoch (training and validation) as a PNG at `path`."""
    plt = pyplot()
    epochs = list(range(1, len(history) + 1))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], label="train")
    ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], label="validation")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend()
    return save_png(fig, path)

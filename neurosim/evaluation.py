"""Evaluation: the network's predictions and its loss and accuracy on a data split (inference phases only).

:class:`Evaluation` holds :meth:`~neurosim.simulator.Simulator.predict` and
:meth:`~neurosim.simulator.Simulator.evaluate`; :class:`~neurosim.simulator.Simulator` inherits them.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Evaluation"]


class Evaluation:
    """Inference over a data set, mixed into :class:`~neurosim.simulator.Simulator`.

    It uses the simulator's :meth:`run_trial`, ``epoch`` and loss (``_loss``).
    """

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Network output (the loss's prediction: identity or softmax) for inputs ``x`` (N, d)."""
        outs = []
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            res = self.run_trial({"x": xb}, learn=False, epoch=self.epoch)
            outs.append(res.output)
        return self._loss.predict(np.concatenate(outs))

    def evaluate(self, split, batch_size: int = 1000) -> dict[str, float]:
        """Loss (mean per sample) and accuracy on a split, inference phases only."""
        logits = []
        for i in range(0, len(split), batch_size):
            res = self.run_trial({"x": split.x[i:i + batch_size]}, learn=False)
            logits.append(res.output)
        a = np.concatenate(logits)
        loss = self._loss.value(a, split.y) / len(split)
        acc = float((a.argmax(1) == split.y.argmax(1)).mean()) if split.y.shape[1] > 1 else float("nan")
        return {"loss": loss, "accuracy": acc}

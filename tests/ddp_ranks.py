"""``ct pretrain`` under torchrun that also saves each rank's parameters when training ends
(before the best checkpoint is reloaded), so a test can check the ranks stayed identical."""

from __future__ import annotations

import sys

import torch

from ct_plugins.cli import main
from ct_plugins.pretrain.train import Trainer


def _saving_ranks(original):
    def final_metrics(self, stopped):
        torch.save(self.model.state_dict(), self.out_dir / f"rank{self.dist.rank}.pt")
        return original(self, stopped)

    return final_metrics


if __name__ == "__main__":
    Trainer._final_metrics = _saving_ranks(Trainer._final_metrics)  # this process only
    sys.exit(main(sys.argv[1:]))

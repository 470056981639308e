"""Label-smoothed cross-entropy over non-padding target tokens (Szegedy et al. 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, summed over tokens: what is back-propagated (after normalising)
    nll: torch.Tensor  # scalar, summed negative log-likelihood without smoothing (for perplexity)


def label_smoothed_nll(logits: torch.Tensor, target: torch.Tensor, pad: int, smoothing: float) -> LossOutput:
    """logits [B, T, V], target [B, T] -> losses summed over the tokens that are not `pad`.

    The token count is the batch's (known on the host), so nothing here forces a device sync.

    Smoothing spreads `smoothing` of the target mass uniformly over the vocabulary:
    loss = (1 - eps) * nll + eps * mean_v(-log p_v). Computed in fp32 whatever the AMP dtype.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1)  # [B, T, V]
    mask = target != pad  # [B, T]
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [B, T]
    nll = nll.masked_fill(~mask, 0.0).sum()
    if smoothing > 0:
        uniform = -lprobs.mean(dim=-1).masked_fill(~mask, 0.0).sum()
        loss = (1.0 - smoothing) * nll + smoothing * uniform
    else:
        loss = nll
    return LossOutput(loss=loss, nll=nll.detach())

"""The output layer and label-smoothed cross-entropy (Szegedy et al. 2016), fused and in row chunks.

loss = (1 - eps) * nll + eps * mean_v(-log p_v), summed over the target tokens that are not padding.

The textbook path (logits = output(features) for the whole batch, log_softmax, gather) holds a
[tokens, V] tensor in memory several times over and spends most of its time allocating and
re-reading it. Here the logits exist one chunk of rows at a time: each chunk's gradient
(softmax - (1 - eps) * onehot - eps / V) is formed in place and pushed through the output layer at
once, so backward only scales the stored gradients by the incoming scalar. Same numbers as the
textbook path (tests/unit/test_loss.py compares losses and gradients), less memory, fewer passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Logits per chunk: 4M values (16 MB in fp32). Memory stays flat in batch x vocabulary, and on CPU
# a buffer this size is recycled by the allocator instead of being page-faulted in every chunk.
CHUNK_VALUES = 1 << 22


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, summed over tokens: what is back-propagated (after normalising)
    nll: torch.Tensor  # scalar, summed negative log-likelihood without smoothing (for perplexity)


def output_loss(features: torch.Tensor, target: torch.Tensor, output: nn.Linear, pad: int, smoothing: float) -> LossOutput:
    """features [B, T, H] (what feeds the output layer), target [B, T] -> losses summed over non-`pad` tokens.

    The softmax runs in fp32 whatever the autocast dtype; nothing here forces a host sync on the
    token count (it is the batch's, known on the host).
    """
    mask = target != pad  # [B, T]
    rows, gold = features[mask], target[mask]  # [N, H], [N]
    bias = output.bias if output.bias is not None else rows.new_zeros(output.out_features)
    if torch.is_grad_enabled() and (rows.requires_grad or output.weight.requires_grad):
        loss, nll = _OutputLoss.apply(rows, output.weight, bias, gold, smoothing)
        return LossOutput(loss=loss, nll=nll.detach())
    loss, nll, _ = _chunked_loss(rows, output.weight, bias, gold, smoothing, with_grad=False)
    return LossOutput(loss=loss, nll=nll)


class _OutputLoss(torch.autograd.Function):
    """(features [N, H], weight [V, H], bias [V], target [N]) -> (loss, nll); gradients made in forward."""

    @staticmethod
    def forward(ctx, features, weight, bias, target, smoothing):
        loss, nll, grads = _chunked_loss(features, weight, bias, target, smoothing, with_grad=True)
        ctx.save_for_backward(*grads)
        ctx.feature_dtype = features.dtype
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss, grad_nll):
        # nll is a detached report: only the loss carries gradient.
        grad_features, grad_weight, grad_bias = ctx.saved_tensors
        return (grad_features * grad_loss).to(ctx.feature_dtype), grad_weight * grad_loss, grad_bias * grad_loss, None, None


def _chunked_loss(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, target: torch.Tensor, smoothing: float, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """Loss and nll sums; with_grad: also d loss / d (features [N, H], weight [V, H], bias [V]), in fp32."""
    num_rows, vocab = features.size(0), weight.size(0)
    nll = torch.zeros((), dtype=torch.float32, device=features.device)
    uniform = torch.zeros_like(nll)
    grads: tuple[torch.Tensor, ...] = ()
    if with_grad:
        grads = (
            torch.empty(features.shape, dtype=torch.float32, device=features.device),
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device),
            torch.zeros(vocab, dtype=torch.float32, device=weight.device),
        )
    step = max(1, CHUNK_VALUES // vocab)
    for start in range(0, num_rows, step):
        rows, gold = features[start : start + step], target[start : start + step, None]  # [n, H], [n, 1]
        logits = torch.addmm(bias, rows, weight.t()).float()  # [n, V], under autocast in its dtype first
        gold_logit = logits.gather(1, gold)  # [n, 1]
        mean_logit = logits.mean(-1, keepdim=True) if smoothing else None
        top = logits.amax(-1, keepdim=True)
        probs = logits.sub_(top).exp_()  # unnormalised, in place: the chunk's only [n, V] buffer
        total = probs.sum(-1, keepdim=True)
        log_z = total.log() + top  # [n, 1] log-partition
        nll += (log_z - gold_logit).sum()
        if smoothing:
            uniform += (log_z - mean_logit).sum()
        if with_grad:
            grad_features, grad_weight, grad_bias = grads
            probs.div_(total).scatter_add_(1, gold, probs.new_full(gold.shape, smoothing - 1.0))
            if smoothing:
                probs.sub_(smoothing / vocab)  # d loss / d logits: softmax - (1 - eps) onehot - eps / V
            grad_features[start : start + step] = probs @ weight
            grad_weight += probs.t() @ rows
            grad_bias += probs.sum(0)
    loss = (1.0 - smoothing) * nll + smoothing * uniform  # a new tensor even at 0: autograd needs two distinct outputs
    return loss, nll, grads

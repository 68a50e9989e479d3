"""A linear-chain conditional random field over per-token tag scores.

score(tags) = start[t_0] + sum_i emissions[i, t_i] + sum_i transitions[t_{i-1}, t_i] + end[t_last]
The log-likelihood of the gold path is its score minus log Z, the log-sum-exp of the scores of all
paths (forward algorithm); decoding returns the highest-scoring path (Viterbi). Both run over a
batch whose sequences are given by a mask that is True on a prefix of each row (right padding).
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    def __init__(self, num_tags: int):
        super().__init__()
        self.start_transitions = nn.Parameter(torch.zeros(num_tags))
        self.end_transitions = nn.Parameter(torch.zeros(num_tags))
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(tags | emissions) per sequence: (B, T, K), (B, T), (B, T) bool -> (B,)."""
        emissions = emissions.float()
        return self._path_score(emissions, tags, mask) - self._log_partition(emissions, mask)

    def _path_score(self, emissions, tags, mask):
        mask = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        moved = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (mask.sum(1).long() - 1).unsqueeze(1)).squeeze(1)
        return (self.start_transitions[tags[:, 0]] + (emitted * mask).sum(1)
                + (moved * mask[:, 1:]).sum(1) + self.end_transitions[last])

    def _log_partition(self, emissions, mask):
        alpha = self.start_transitions + emissions[:, 0]  # (B, K): log-sum over paths ending in each tag
        for i in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions + emissions[:, i].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, i].unsqueeze(1), step, alpha)
        return torch.logsumexp(alpha + self.end_transitions, dim=1)

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The best path per sequence, (B, T); positions outside the mask hold 0."""
        emissions = emissions.float()
        batch, length, _ = emissions.shape
        score = self.start_transitions + emissions[:, 0]
        backpointers = []
        for i in range(1, length):
            best, came_from = (score.unsqueeze(2) + self.transitions).max(dim=1)  # over the previous tag
            backpointers.append(came_from)
            score = torch.where(mask[:, i].unsqueeze(1), best + emissions[:, i], score)
        final = tag = (score + self.end_transitions).argmax(dim=1)  # (B,)
        lengths = mask.sum(1)
        path = torch.zeros(batch, length, dtype=torch.long, device=emissions.device)
        for i in range(length - 1, -1, -1):
            tag = torch.where(lengths - 1 == i, final, tag)  # a row's walk back starts at its last position
            path[:, i] = torch.where(i < lengths, tag, torch.zeros_like(tag))
            if i > 0:
                tag = torch.where(i < lengths, backpointers[i - 1].gather(1, tag.unsqueeze(1)).squeeze(1), tag)
        return path

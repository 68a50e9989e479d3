"""The pretraining optimizers and learning-rate schedule.

LAMB follows You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
minutes" (2019), Algorithm 2, with phi = identity: for each parameter tensor x with gradient g,

    m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
    r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    u = r + wd x
    x = x - lr * (||x|| / ||u||) * u     (trust ratio 1 when either norm is 0)

Parameters in a group with `adapt=False` (LayerNorm weights and all biases, as the seed's
optimizer excludes them) get neither weight decay nor the trust ratio: a plain Adam step.

`muon_adamw` (`pretrain`'s default from scratch, `--optimizer muon`) steps the transformer layers' weight matrices
with PyTorch's Muon (Jordan et al. 2024: momentum, then the update's singular values pushed to
about 1 by a few Newton-Schulz iterations) and everything else with AdamW.
"""

from __future__ import annotations

import torch

NO_DECAY = ("LayerNorm", "layer_norm", "bias")  # parameter-name parts the seed exempts from decay


def parameter_groups(model: torch.nn.Module, weight_decay: float, exclude=()) -> list[dict]:
    """Two groups: decayed + trust-ratio-adapted weights, and the exempt LayerNorm/bias ones; the
    parameters in `exclude` (another optimizer's) in neither."""
    excluded = {id(p) for p in exclude}
    decayed, exempt = [], []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in excluded:
            (exempt if any(part in name for part in NO_DECAY) else decayed).append(p)
    return [{"params": decayed, "weight_decay": weight_decay, "adapt": True},
            {"params": exempt, "weight_decay": 0.0, "adapt": False}]


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, exclude=(), **kwargs) -> torch.optim.AdamW:
    """AdamW with the same exemptions (fine-tuning, and pretraining with --optimizer adamw)."""
    groups = [{k: v for k, v in group.items() if k != "adapt"}
              for group in parameter_groups(model, weight_decay, exclude)]
    return torch.optim.AdamW(groups, lr=lr, **kwargs)


def muon_adamw(model: torch.nn.Module, lr: float, muon_lr: float, weight_decay: float, **adamw_kwargs) -> Chained:
    """Muon (PyTorch's: momentum, then each update orthogonalised by Newton-Schulz iterations) for the
    transformer layers' weight matrices, AdamW (with `adamw_kwargs`) for everything else: embeddings,
    their E->H mapping, LayerNorms, biases, pooler and heads, as Muon's authors split a model. Muon's
    matrices get no weight decay (it was measured without)."""
    matrices = [p for name, p in model.named_parameters()
                if p.requires_grad and p.ndim == 2 and ".albert_layers." in name]
    if not matrices:
        raise ValueError("Muon needs the transformer layers' weight matrices; this model has none")
    rest = adamw(model, lr, weight_decay, exclude=matrices, **adamw_kwargs)
    return Chained(rest, torch.optim.Muon(matrices, lr=muon_lr, weight_decay=0.0, momentum=0.95, nesterov=True))


class Chained(torch.optim.Optimizer):
    """Optimizers over disjoint parameters, stepped as one: `param_groups` lists every group (a
    schedule scales each group's rate), and the state dict holds each optimizer's."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers
        self.defaults, self.state = {}, {}

    @property
    def param_groups(self) -> list[dict]:  # read anew: loading a state dict replaces the groups
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def step(self):  # no closure: pretraining computes its losses before the step
        for optimizer in self.optimizers:
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True):
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"chained": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict):
        if len(state_dict.get("chained", ())) != len(self.optimizers):
            raise ValueError("this optimizer state was written by another optimizer")
        for optimizer, state in zip(self.optimizers, state_dict["chained"]):
            optimizer.load_state_dict(state)


class Lamb(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, adapt: bool = True):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad LAMB settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "adapt": adapt})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt_().add_(group["eps"]))
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                ratio = 1.0
                if group["adapt"]:
                    weight_norm, update_norm = p.norm(), update.norm()
                    ratio = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm, 1.0)
                p.sub_(update * (group["lr"] * ratio))
        return loss


def warmup_polynomial_decay(warmup_steps: int, total_steps: int, power: float = 1.0):
    """The seed's schedule as a LambdaLR factor: linear warm-up to the full rate over
    `warmup_steps`, then (1 - step / total_steps) ** power (BERT's polynomial decay to 0)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, 1 - step / total_steps) ** power
    return factor

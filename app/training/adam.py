"""Adam, step for step and state for state torch.optim.Adam's (its single-tensor path, the one
PyTorch takes on the CPU), without torch.optim.

Why not torch.optim: its Optimizer base imports `torch._dynamo` on construction and on every
`step`, about 2.3 s of CPU in every training process, a quarter of a short job's start. This
class does the same arithmetic in the same order, so a run's parameters are bit for bit those
torch.optim.Adam gives, and its state_dict has torch's layout: checkpoints written before it
load, and checkpoints written with it load into torch.optim.Adam.

Only what Oppen trains with: one parameter group, no weight decay, no AMSGrad, dense
gradients.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

# The options torch.optim.Adam saves beside `lr`, `betas` and `eps`, at the values this class
# implements; a saved state with any other value is refused rather than stepped differently.
_FIXED_OPTIONS: dict[str, Any] = {
    "weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": None,
    "capturable": False, "differentiable": False, "fused": None,
    "decoupled_weight_decay": False,
}


class Adam:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam was given no parameters")
        self.param_groups = [{"lr": float(lr), "betas": (float(betas[0]), float(betas[1])),
                              "eps": float(eps), **_FIXED_OPTIONS, "params": self.params}]
        # Per parameter, made at its first step as torch does: step (a float32 CPU scalar,
        # torch's layout when neither capturable nor fused), exp_avg, exp_avg_sq.
        self.state: dict[torch.nn.Parameter, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        params, grads, avgs, squares, steps = [], [], [], [], []
        for p in self.params:
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise ValueError("Adam takes dense gradients only")
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            params.append(p)
            grads.append(grad)
            avgs.append(state["exp_avg"])
            squares.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        # Each operation over every parameter in one call (torch's foreach kernels, which on
        # the CPU run the single-tensor kernel tensor by tensor): the single-tensor path's
        # arithmetic in its order, so the same bits, with a tenth of the Python calls.
        torch._foreach_add_(steps, 1)
        torch._foreach_lerp_(avgs, grads, 1 - beta1)
        torch._foreach_mul_(squares, beta2)
        torch._foreach_addcmul_(squares, grads, grads, value=1 - beta2)
        counts = [step.item() for step in steps]
        denoms = torch._foreach_sqrt(squares)
        torch._foreach_div_(denoms, [(1 - beta2 ** n) ** 0.5 for n in counts])
        torch._foreach_add_(denoms, eps)
        torch._foreach_addcdiv_(params, avgs, denoms, [-(lr / (1 - beta1 ** n)) for n in counts])

    def state_dict(self) -> dict[str, Any]:
        """torch.optim.Adam's layout: state by parameter index, the group with indices."""
        index = {id(p): i for i, p in enumerate(self.params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()},
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A state saved by this class or by torch.optim.Adam for the same parameters."""
        try:
            groups, saved = state_dict["param_groups"], state_dict["state"]
            (group,) = groups
            indices = list(group["params"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an Adam state with one parameter group ({exc})") from None
        if len(indices) != len(self.params):
            raise ValueError(f"the saved optimizer has {len(indices)} parameters, this "
                             f"network {len(self.params)}")
        for key, value in _FIXED_OPTIONS.items():
            if group.get(key, value) != value:
                raise ValueError(f"the saved optimizer has {key}={group[key]!r}, which "
                                 f"Oppen's Adam does not implement")
        state: dict[torch.nn.Parameter, dict[str, torch.Tensor]] = {}
        try:
            for index, p in zip(indices, self.params, strict=True):
                if index not in saved:
                    continue
                state[p] = _entry(saved[index], index, p)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"the saved optimizer state is malformed ({exc!r})") from None
        try:
            options = {"lr": float(group["lr"]),
                       "betas": tuple(float(b) for b in group["betas"]),
                       "eps": float(group["eps"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the saved optimizer's options are malformed ({exc!r})") from None
        if len(options["betas"]) != 2:
            raise ValueError(f"the saved optimizer has betas={options['betas']!r}")
        self.state = state
        self.param_groups[0].update(options)


def _entry(entry: dict[str, Any], index: int, p: torch.nn.Parameter) -> dict[str, torch.Tensor]:
    """One parameter's saved state as torch loads it: the moments on the parameter's device
    and dtype, the step a float32 CPU scalar."""
    for name in ("exp_avg", "exp_avg_sq"):
        if not isinstance(entry[name], torch.Tensor) or entry[name].shape != p.shape:
            shape = tuple(getattr(entry[name], "shape", ()))
            raise ValueError(f"the saved optimizer's {name} for parameter {index} has shape "
                             f"{shape}, the network's {tuple(p.shape)}")
    return {"step": torch.as_tensor(entry["step"], dtype=torch.float32, device="cpu").clone(),
            "exp_avg": entry["exp_avg"].to(p.device, p.dtype, copy=True),
            "exp_avg_sq": entry["exp_avg_sq"].to(p.device, p.dtype, copy=True)}

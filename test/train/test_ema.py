"""EMA of the weights (train.ema_decay): the recursion, exact resume in the Trainer, checkpoint
layout, and evaluation picking the EMA weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fixtures import tiny_config
from torch import nn

from toolkit.config import ConfigError, dump_config, load_config
from toolkit.inference import load_encoder
from toolkit.model import build_model, build_tokenizer
from toolkit.runs import open_run
from toolkit.schema import TrainConfig, train_config
from toolkit.train.average import average_checkpoints
from toolkit.train.checkpoint import list_checkpoints, save_atomic
from toolkit.train.ema import EMA
from toolkit.train.trainer import Trainer
from toolkit.weights import load_weights_only, model_weights

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


class Net(nn.Module):
    """A linear regression with a step counter (an integer buffer) and an fp16 buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("scale", torch.ones(2, dtype=torch.float16))

    def forward(self, batch):
        self.count += 1
        y = self.lin(batch["x"]) * self.scale.float()
        return {"loss": ((y - batch["y"]) ** 2).mean()}


def test_ema_equals_closed_form():
    torch.manual_seed(0)
    net = Net()
    decay, k = 0.9, 7
    p0 = {n: v.detach().double().clone() for n, v in net.state_dict().items()}
    ema = EMA(net, decay)
    seen = []
    for _ in range(k):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net.scale.mul_(1.5)
            net.count += 3
        seen.append({n: v.detach().double().clone() for n, v in net.state_dict().items()})
        ema.update(net)
    state = ema.state_dict()
    assert state.keys() == net.state_dict().keys()
    for n in ("lin.weight", "lin.bias", "scale"):
        # ema_k = decay^k p_0 + sum_i (1 - decay) decay^(k-i) p_i
        ref = decay**k * p0[n] + sum(
            (1 - decay) * decay ** (k - i) * seen[i - 1][n] for i in range(1, k + 1)
        )
        assert state[n].dtype == torch.float32  # the average is kept in float32
        torch.testing.assert_close(state[n].double(), ref, rtol=1e-6, atol=1e-6)
    assert int(state["count"]) == 3 * k and state["count"].dtype == torch.long
    assert ema.model_state_dict()["scale"].dtype == torch.float16
    fresh = Net()
    fresh.load_state_dict(ema.model_state_dict())  # a drop-in state dict for the model
    other = EMA(Net(), decay)
    other.load_state_dict(state)
    assert all(torch.equal(state[n], other.state_dict()[n]) for n in state)


class Loader:
    """Deterministic regression batches; ``set_epoch(epoch, skip)`` as the trainer expects."""

    def __init__(self, n: int = 5) -> None:
        g = torch.Generator().manual_seed(1)
        self.batches = [{"x": torch.randn(4, 3, generator=g)} for _ in range(n)]
        for b in self.batches:
            b["y"] = b["x"][:, :2] * 2 + 1
            b["cut_ids"] = ["a"] * 4
        self.skip = 0

    def set_epoch(self, epoch, skip=0):
        self.skip = skip

    def __iter__(self):
        yield from self.batches[self.skip :]


def run(run_dir: Path, max_steps: int, resume: bool = False) -> Trainer:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    loader = Loader()
    cfg = TrainConfig(
        max_steps=max_steps,
        progress=False,
        log_every=100,
        save_every=4,
        keep_last=10,
        ema_decay=0.8,
    )
    trainer = Trainer(net, opt, sched, loader, loader, cfg, run_dir, torch.device("cpu"))
    if resume:
        assert trainer.resume()
    trainer.fit()
    return trainer


def test_trainer_ema_resume_is_exact(tmp_path):
    steps = 13  # 2 epochs and a half; checkpoints at 4, 8, 12, 13
    ref = run(tmp_path / "ref", steps)
    cut = tmp_path / "cut"
    run(cut, 6)  # checkpoints at 4 and 6: the second run resumes from step 6, mid-epoch
    resumed = run(cut, steps, resume=True)
    assert resumed.step == ref.step == steps
    a, b = ref.ema_state_dict(), resumed.ema_state_dict()
    assert a.keys() == b.keys() and int(a["count"]) == steps
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k, v in ref.module.state_dict().items():
        assert torch.equal(v, resumed.module.state_dict()[k]), k
    # the EMA differs from the model and lags behind it
    assert not torch.equal(a["lin.weight"], ref.module.lin.weight.detach())

    # the checkpoints hold it under "ema" (with the model's keys), readable without running code
    last = load_weights_only(list_checkpoints(cut / "checkpoints")[-1][1])
    assert set(last["ema"]) == set(last["model"])
    assert torch.equal(last["ema"]["lin.weight"], b["lin.weight"])
    avg = average_checkpoints([p for _, p in list_checkpoints(ref.run_dir / "checkpoints")], "ema")
    assert avg.step == steps and int(avg.weights["count"]) == steps


def test_ema_off_by_default_and_checked(tmp_path):
    assert TrainConfig().ema_decay is None
    assert train_config({"train": {"ema_decay": 0.999}}).ema_decay == 0.999
    with pytest.raises(ConfigError, match=r"train.ema_decay=1.0: must be in \[0, 1\)"):
        train_config({"train": {"ema_decay": 1.0}})
    loader = Loader()
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    cfg = TrainConfig(max_steps=1, progress=False)
    trainer = Trainer(net, opt, None, loader, loader, cfg, tmp_path, torch.device("cpu"))
    assert trainer.ema_state_dict() is None and "ema" not in trainer.state_dict()


def test_evaluation_uses_the_ema_weights(tone_data, tmp_path, caplog):
    """open_run(...).model (evaluation) and load_encoder (toolkit.inference) take the EMA
    of a model.pt/checkpoint that has one, the model's weights otherwise."""
    assert model_weights({"model": {"a": 1}}) == {"a": 1}
    assert model_weights({"model": {"a": 1}, "ema": {"a": 2}}) == {"a": 2}
    exp = tmp_path / "exp"
    over = tiny_config(exp, tone_data["train"], tone_data["spm"], **{"frontend.stats_file": "null"})
    cfg = load_config(CONF, over)
    dump_config(cfg, exp / "config.yaml")
    tok = build_tokenizer(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    ema = {k: v + 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_atomic(
        {"model": model.state_dict(), "ema": ema, "config": cfg, "step": 1}, exp / "model.pt"
    )
    with caplog.at_level("INFO"):
        loaded = open_run(exp).model(tok)
    assert "using the EMA (train.ema_decay) weights" in caplog.text
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ema[k]), k
    enc = load_encoder(exp)
    for k, v in enc.encoder.state_dict().items():
        assert torch.equal(v, ema["encoder." + k]), k

    save_atomic({"model": model.state_dict(), "config": cfg, "step": 1}, exp / "model.pt")
    caplog.clear()
    with caplog.at_level("INFO"):
        loaded = open_run(exp).model(tok)
    assert "using the model weights" in caplog.text
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k

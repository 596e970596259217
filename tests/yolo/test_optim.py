from torch import nn

from yolo.hyp import Hyperparameters
from yolo.optim import BIAS_GROUP, DECAY_GROUP, NO_DECAY_GROUP, Schedule, build_optimizer, lr_factor


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1))


def test_three_groups_and_decay_only_on_weights():
    net = _net()
    opt = build_optimizer(net, Hyperparameters(), batch_size=16)
    groups = opt.param_groups
    assert len(groups[BIAS_GROUP]["params"]) == 2  # BN bias + conv bias
    assert len(groups[DECAY_GROUP]["params"]) == 2  # two conv weights
    assert len(groups[NO_DECAY_GROUP]["params"]) == 1  # BN weight
    assert groups[BIAS_GROUP]["weight_decay"] == 0 and groups[NO_DECAY_GROUP]["weight_decay"] == 0
    assert groups[DECAY_GROUP]["weight_decay"] == 0.0005  # 16 x 4 accumulated = 64 nominal
    assert all(g["nesterov"] for g in groups)


def test_warmup_then_decay():
    hyp = Hyperparameters(warmup_epochs=1)
    opt = build_optimizer(_net(), hyp, batch_size=16)
    schedule = Schedule(hyp, epochs=10, batches_per_epoch=20)
    assert schedule.warmup_iterations == 100  # max(1 * 20, 100)
    schedule.apply(opt, epoch=0, iteration=0)
    assert opt.param_groups[BIAS_GROUP]["lr"] == hyp.warmup_bias_lr
    assert opt.param_groups[DECAY_GROUP]["lr"] == 0.0
    assert opt.param_groups[DECAY_GROUP]["momentum"] == hyp.warmup_momentum
    schedule.apply(opt, epoch=6, iteration=120)
    expected = hyp.lr0 * lr_factor(False, hyp.lrf, 10)(6)
    assert all(abs(g["lr"] - expected) < 1e-12 for g in opt.param_groups)
    assert opt.param_groups[0]["momentum"] == hyp.momentum


def test_lr_factor_ends_at_lrf():
    for cosine in (False, True):
        f = lr_factor(cosine, 0.05, 20)
        assert abs(f(0) - 1.0) < 1e-12 and abs(f(20) - 0.05) < 1e-12
        assert f(5) > f(10) > f(15)

"""The pretraining application: typed config, strategy, distributed training loop, checkpoints, export.

config = trainer.load_config("phase1.yaml", overrides=["train.micro_batch_size=32"])
result = trainer.train(config)          # or trainer.run(config, mode="train" | "eval" | "export")
"""

from trainer.config import Config, load_config
from trainer.controller import TrainResult
from trainer.errors import USER_ERRORS, ConfigError, NonFiniteError, UserError
from trainer.evaluation import evaluate, follow_checkpoints
from trainer.export import export_model
from trainer.modes import MODES, export_checkpoint, run
from trainer.optimizers import make_optimizer
from trainer.plan import BatchPlan, SchedulePlan, plan_batches, plan_schedule
from trainer.preemption import PREEMPTED_EXIT_CODE, Preempted
from trainer.pretraining import train
from trainer.step import TrainStep, use_reduced_gradients
from trainer.strategy import make_strategy

__all__ = [
    "MODES",
    "PREEMPTED_EXIT_CODE",
    "USER_ERRORS",
    "BatchPlan",
    "Config",
    "ConfigError",
    "NonFiniteError",
    "Preempted",
    "SchedulePlan",
    "TrainResult",
    "TrainStep",
    "UserError",
    "evaluate",
    "export_checkpoint",
    "export_model",
    "follow_checkpoints",
    "load_config",
    "make_optimizer",
    "make_strategy",
    "plan_batches",
    "plan_schedule",
    "run",
    "train",
    "use_reduced_gradients",
]

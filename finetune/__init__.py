"""Fine-tuning of a pretrained BERT: GLUE classification, SQuAD v1.1 span extraction, the demo's library task.

config = finetune.load_config("mrpc.yaml", overrides=["model.init_checkpoint=runs/demo/model/export"])
result = finetune.finetune(config)       # or finetune.run(config, mode="train" | "eval")

Modules: config (the YAML schema), classification and squad (reading, features, official metrics),
metrics, model (the task heads), tasks (what the loop needs of a task: features, model, loss definition),
train (the run, on the trainer's step, device loop and controller), library_task
(the demo's task built from the embedded corpus), demo (pretrained against random initialisation).
"""

from finetune.config import FinetuneConfig, load_config
from finetune.train import MODES, FinetuneResult, evaluate_checkpoint, finetune, run

__all__ = [
    "MODES",
    "FinetuneConfig",
    "FinetuneResult",
    "evaluate_checkpoint",
    "finetune",
    "load_config",
    "run",
]

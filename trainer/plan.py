"""What a run does on the devices it found: micro-batches, accumulation steps and the learning-rate schedule.

The config states the global batch; the number of replicas is only known at start-up, so the gradient
accumulation is derived here:

    global_batch_size = micro_batch_size x replicas x accumulation_steps

and a run whose numbers do not divide is refused with the numbers, never silently changed.

`describe_plan` is --mode=plan: the resolved config, the batches for runtime.num_replicas (a hardware
overlay states it), the schedule, the memory of one replica (trainer/memory.py) and the checkpoint size,
computed from the config alone: no device is touched and no data is read.
"""

import dataclasses

import lamb
from trainer import memory, typed_yaml
from trainer.config import load_config
from trainer.errors import ConfigError
from trainer.model import load_bert_config


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    global_batch_size: int  # sequences per optimizer step, all replicas together
    micro_batch_size: int  # sequences per replica per forward/backward pass
    num_replicas: int
    num_workers: int  # input pipelines (hosts), each feeding its local replicas
    accumulation_steps: int  # forward/backward passes per replica per optimizer step

    @property
    def replica_batch_size(self):
        """Sequences one replica sees per optimizer step."""
        return self.micro_batch_size * self.accumulation_steps

    @property
    def worker_batch_size(self):
        """Sequences one input pipeline reads per optimizer step."""
        return self.global_batch_size // self.num_workers

    def describe(self):
        return (
            f"global batch {self.global_batch_size} = micro-batch {self.micro_batch_size} x "
            f"{self.num_replicas} replica(s) x {self.accumulation_steps} accumulation step(s) "
            f"({self.num_workers} input pipeline(s) of {self.worker_batch_size} sequences per step)"
        )


def plan_batches(
    global_batch_size, micro_batch_size, num_replicas, num_workers=1, batch_key="global_batch_size"
):
    """The accumulation that turns `micro_batch_size` on `num_replicas` replicas into the global batch;
    `batch_key` names the global batch's key of the train section (fine-tuning's is batch_size)."""
    sequences_per_pass = micro_batch_size * num_replicas
    if global_batch_size % sequences_per_pass:
        raise ConfigError(
            f"train.{batch_key} ({global_batch_size}) is not divisible by train.micro_batch_size "
            f"({micro_batch_size}) x {num_replicas} replica(s) = {sequences_per_pass}; choose a "
            f"micro_batch_size that makes {batch_key} / (micro_batch_size x replicas) a whole number"
        )
    if num_replicas % num_workers:
        raise ValueError(f"{num_replicas} replicas cannot be spread evenly over {num_workers} workers")
    return BatchPlan(
        global_batch_size=global_batch_size,
        micro_batch_size=micro_batch_size,
        num_replicas=num_replicas,
        num_workers=num_workers,
        accumulation_steps=global_batch_size // sequences_per_pass,
    )


@dataclasses.dataclass(frozen=True)
class SchedulePlan:
    peak_learning_rate: float
    warmup_steps: int
    total_steps: int
    power: float
    end_learning_rate: float
    train_steps: int  # where this run stops: train.max_steps, or total_steps
    rescaled_from: lamb.ScaledHyperparameters | None = None  # the reference recipe, when rescaled

    def make_schedule(self):
        return lamb.WarmupPolynomialDecay(
            peak_learning_rate=self.peak_learning_rate,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            power=self.power,
            end_learning_rate=self.end_learning_rate,
        )

    def describe(self):
        lines = [
            f"learning rate: linear warmup 0 -> {self.peak_learning_rate:g} over {self.warmup_steps} steps, "
            f"then power-{self.power:g} decay to {self.end_learning_rate:g} at step {self.total_steps}; "
            f"this run stops at step {self.train_steps}"
        ]
        if self.rescaled_from is not None:
            ref = self.rescaled_from
            lines.append(
                f"schedule rescaled from the batch-{ref.batch_size} recipe by the LAMB paper's rules "
                f"(square-root learning rate, same epochs): peak_learning_rate {ref.learning_rate:g} -> "
                f"{self.peak_learning_rate:g}, warmup_steps {ref.warmup_steps} -> {self.warmup_steps}, "
                f"total_steps {ref.total_steps} -> {self.total_steps}"
            )
        return lines


def plan_schedule(schedule, train):
    """The schedule of this run from the `schedule` and `train` config sections (rescaled if asked)."""
    peak, warmup, total = schedule.peak_learning_rate, schedule.warmup_steps, schedule.total_steps
    reference = None
    if schedule.reference_batch_size is not None:
        try:
            scaled = lamb.scale_for_batch_size(
                schedule.reference_batch_size, peak, warmup, total, train.global_batch_size
            )
        except ValueError as e:
            raise ConfigError(f"schedule.reference_batch_size: cannot rescale the schedule: {e}") from None
        reference = lamb.ScaledHyperparameters(schedule.reference_batch_size, peak, warmup, total)
        peak, warmup, total = scaled.learning_rate, scaled.warmup_steps, scaled.total_steps
    if schedule.end_learning_rate > peak:
        raise ConfigError(
            f"schedule.end_learning_rate ({schedule.end_learning_rate:g}) is above the peak learning rate "
            f"({peak:g})"
        )
    train_steps = total if train.max_steps is None else train.max_steps
    if train_steps > total:
        raise ConfigError(
            f"train.max_steps ({train.max_steps}) is beyond the end of the schedule "
            f"(total_steps {total}{', after rescaling' if reference else ''})"
        )
    return SchedulePlan(
        peak_learning_rate=peak,
        warmup_steps=warmup,
        total_steps=total,
        power=schedule.power,
        end_learning_rate=schedule.end_learning_rate,
        train_steps=train_steps,
        rescaled_from=reference,
    )


def describe_plan(config):
    """The lines --mode=plan prints (see the module docstring)."""
    runtime, train, data = config.runtime, config.train, config.data
    replicas = runtime.num_replicas or 1
    batches = plan_batches(train.global_batch_size, train.micro_batch_size, replicas)
    schedule = plan_schedule(config.schedule, train)
    bert_config = load_bert_config(config.model)
    estimate = memory.estimate_memory(
        bert_config,
        batches.micro_batch_size,
        batches.accumulation_steps,
        data.max_seq_length,
        data.max_predictions_per_seq,
        runtime.mixed_precision,
    )
    lines = ["config:", *(f"  {line}" for line in typed_yaml.format_config(config)), "plan:"]
    replicas_note = "" if runtime.num_replicas else " (runtime.num_replicas is null: planned for 1)"
    lines.append(
        f"  batches: global batch {batches.global_batch_size} = micro-batch {batches.micro_batch_size} x "
        f"{replicas} replica(s){replicas_note} x {batches.accumulation_steps} accumulation step(s); "
        f"{train.steps_per_loop} optimizer step(s) per loop call, {runtime.mixed_precision}"
    )
    lines += [f"  {line}" for line in schedule.describe()]
    lines.append(
        f"  model: {estimate.parameters:,} parameters (L{bert_config.num_hidden_layers} "
        f"H{bert_config.hidden_size} A{bert_config.num_attention_heads}, vocab {bert_config.vocab_size}), "
        f"sequence {data.max_seq_length}, {data.max_predictions_per_seq} predictions"
    )
    lines.append(f"  memory of one replica (estimate): {estimate.describe()}")
    lines.append(f"  {memory_verdict(estimate, runtime.device_memory_gib)}")
    lines.append(
        f"  checkpoint: {estimate.checkpoint_bytes / memory.GIB:.2f} GiB (weights and two moments, float32)"
    )
    return lines


def memory_verdict(estimate, device_memory_gib):
    """Whether the estimate fits in memory.MEMORY_MARGIN of the device's memory."""
    if device_memory_gib is None:
        return "device memory: runtime.device_memory_gib is null, not compared"
    fraction = estimate.total / (device_memory_gib * memory.GIB)
    verdict = "fits" if fraction <= memory.MEMORY_MARGIN else "does NOT fit"
    return (
        f"device memory: {verdict}: {fraction:.0%} of {device_memory_gib:g} GiB "
        f"(the plan asks for at most {memory.MEMORY_MARGIN:.0%})"
    )


def overlays_table(overlay_names, phases=("phase1.yaml", "phase2.yaml")):
    """The Markdown table of docs/hardware.md: for each hardware overlay (a name in configs/, e.g.
    hardware/a100-80g-x8.yaml) and phase, the batch arithmetic, precision, steps_per_loop and the memory
    estimate against the device's."""
    rows = [
        "| overlay | phase | global = micro x replicas x accumulation | precision | steps per loop | memory "
        "of one replica (estimate / device) |",
        "|---|---|---|---|---|---|",
    ]
    for name in overlay_names:
        for phase in phases:
            config = load_config([phase, name])
            train, runtime, data = config.train, config.runtime, config.data
            batches = plan_batches(train.global_batch_size, train.micro_batch_size, runtime.num_replicas)
            estimate = memory.estimate_memory(
                load_bert_config(config.model),
                batches.micro_batch_size,
                batches.accumulation_steps,
                data.max_seq_length,
                data.max_predictions_per_seq,
                runtime.mixed_precision,
            )
            device = f"{runtime.device_memory_gib:g} GiB" if runtime.device_memory_gib else "not stated"
            rows.append(
                f"| `{name}` | {phase.removesuffix('.yaml')} | {batches.global_batch_size} = "
                f"{batches.micro_batch_size} x {batches.num_replicas} x {batches.accumulation_steps} | "
                f"{runtime.mixed_precision} | {train.steps_per_loop} | "
                f"{estimate.total / memory.GIB:.1f} GiB / {device} |"
            )
    return "\n".join(rows)

"""Accumulation derived from the devices, and the explicit batch-size rescaling of the schedule."""

import math

import pytest

from trainer.config import ScheduleConfig, TrainConfig
from trainer.errors import ConfigError
from trainer.plan import plan_batches, plan_schedule


@pytest.mark.parametrize(
    ("global_batch", "micro", "replicas", "accumulation"),
    [
        (65536, 64, 8, 128),  # phase 1 on one 8-GPU host
        (65536, 64, 1024, 1),  # phase 1 on a 1024-core TPU pod, as in the paper
        (32768, 8, 16, 256),  # phase 2 on two 8-GPU hosts
        (16, 4, 1, 4),
    ],
)
def test_accumulation_is_global_batch_over_micro_batch_times_replicas(
    global_batch, micro, replicas, accumulation
):
    plan = plan_batches(global_batch, micro, replicas)
    assert plan.accumulation_steps == accumulation
    assert plan.micro_batch_size * plan.num_replicas * plan.accumulation_steps == global_batch
    assert plan.replica_batch_size == micro * accumulation


def test_each_input_pipeline_reads_the_batches_of_its_workers_replicas():
    plan = plan_batches(32768, 8, 16, num_workers=2)
    assert plan.worker_batch_size == 16384
    assert "global batch 32768 = micro-batch 8 x 16 replica(s) x 256 accumulation step(s)" in plan.describe()


def test_a_global_batch_the_devices_cannot_share_is_refused_with_the_numbers():
    with pytest.raises(ConfigError) as error:
        plan_batches(65536, 48, 8)
    message = str(error.value)
    assert "train.global_batch_size (65536)" in message
    assert "train.micro_batch_size (48) x 8 replica(s) = 384" in message


def schedule(**values):
    return ScheduleConfig(**{"peak_learning_rate": 6e-3, "total_steps": 7038, "warmup_steps": 2000, **values})


def train(**values):
    return TrainConfig(**{"global_batch_size": 65536, "micro_batch_size": 64, **values})


def test_the_schedule_is_used_as_written_unless_a_reference_batch_is_given():
    plan = plan_schedule(schedule(power=0.5), train())
    assert (plan.peak_learning_rate, plan.warmup_steps, plan.total_steps, plan.train_steps) == (
        6e-3,
        2000,
        7038,
        7038,
    )
    assert plan.rescaled_from is None
    assert len(plan.describe()) == 1


def test_rescaling_to_a_smaller_batch_follows_the_papers_rules_and_says_so():
    # Phase 1 written for 65536 sequences, run at 8192: k = 1/8, learning rate x sqrt(1/8), the same
    # epochs (8x the steps), the same warmup steps.
    plan = plan_schedule(schedule(reference_batch_size=65536), train(global_batch_size=8192))
    assert plan.peak_learning_rate == pytest.approx(6e-3 / math.sqrt(8))
    assert (plan.warmup_steps, plan.total_steps) == (2000, 7038 * 8)
    assert plan.rescaled_from.batch_size == 65536
    text = " ".join(plan.describe())
    assert "rescaled from the batch-65536 recipe" in text
    assert "peak_learning_rate 0.006 -> 0.00212132" in text
    assert "total_steps 7038 -> 56304" in text


def test_rescaling_that_makes_the_warmup_longer_than_the_run_is_a_config_error():
    with pytest.raises(ConfigError, match="schedule.reference_batch_size: cannot rescale"):
        plan_schedule(schedule(reference_batch_size=512), train(global_batch_size=65536))


def test_max_steps_stops_early_but_may_not_run_past_the_schedule():
    assert plan_schedule(schedule(), train(max_steps=10)).train_steps == 10
    with pytest.raises(ConfigError, match=r"train.max_steps \(8000\) is beyond the end of the schedule"):
        plan_schedule(schedule(), train(max_steps=8000))

"""Training input for a tf.distribute strategy that can be checkpointed, so a resumed run reads on exactly.

tf.distribute's own distributed iterators (`distribute_datasets_from_function`) cannot be saved in a
tf.train.Checkpoint in TF 2.21 (they are not trackable, and their per-device prefetch buffers hold batches
that a checkpoint would lose). So, like `distribute_datasets_from_function` does inside, the input runs one
tf.data pipeline per input host (the CPU of each host that owns replicas), each told its place by a
`tf.distribute.InputContext`; but here each pipeline is a plain tf.data iterator, which a checkpoint saves
with its shuffle buffer and file positions. Every optimizer step, each host's iterator yields the batch of
all its local replicas, and `strategy.experimental_distribute_values_from_function` hands each replica its
contiguous slice of R = replica_batch_size sequences:

    host batch [replicas_on_host * R, ...]  ->  replica k of the host: rows [k * R, (k + 1) * R)

With one host that makes the global batch of a step the same consecutive sequences whatever the number of
replicas: 1 replica x 4 micro-batches and 4 replicas x 1 micro-batch train on identical data.
"""

import atexit
import gc

import tensorflow as tf

# The host loop's tf.function graph holds the iterators, and the cyclic garbage collector frees that graph.
# When this happens during interpreter shutdown, a tf.data iterator's destructor can wait forever for its
# threads (tensorflow/tensorflow#21277: the process hangs after its work is done). Collecting at exit, while
# Python still runs, frees them first.
atexit.register(gc.collect)


def host_of(device):
    """The CPU device of the host that owns `device` ("/job:w/replica:0/task:1/device:GPU:3" -> its CPU:0)."""
    spec = tf.DeviceSpec.from_string(device)
    return spec.replace(device_type="CPU", device_index=0).to_string()


def local_replica_ids(strategy):
    """The global replica ids (replica_id_in_sync_group) of this task's replicas, in device order."""
    ids = strategy.experimental_distribute_values_from_function(
        lambda context: context.replica_id_in_sync_group
    )
    return [int(replica_id) for replica_id in strategy.experimental_local_results(ids)]


class DistributedInput:
    """Per-host tf.data iterators (checkpointable) feeding every replica of `strategy` its batch.

    `dataset_fn(input_context, batch_size)` returns the dataset of one host: batches of `batch_size`
    sequences (the batches of all replicas on that host for one optimizer step), reading the share of the
    data given by `input_context` (num_input_pipelines, input_pipeline_id).
    """

    def __init__(self, strategy, dataset_fn, replica_batch_size):
        self.strategy = strategy
        self.replica_batch_size = replica_batch_size
        devices = list(strategy.extended.worker_devices)  # this task's replica devices, in replica order
        global_ids = local_replica_ids(strategy)
        self.hosts = list(dict.fromkeys(host_of(device) for device in devices))
        replicas_per_host = len(devices) // len(self.hosts)
        num_pipelines = strategy.num_replicas_in_sync // replicas_per_host

        # Global replica id -> (host index, slot of the replica within the host's batch).
        self._slots = {}
        host_replicas = {host: [] for host in self.hosts}
        for device, replica_id in zip(devices, global_ids, strict=True):
            host_replicas[host_of(device)].append(replica_id)
        self.iterators = []
        for host_index, host in enumerate(self.hosts):
            replica_ids = sorted(host_replicas[host])
            for slot, replica_id in enumerate(replica_ids):
                self._slots[replica_id] = (host_index, slot)
            context = tf.distribute.InputContext(
                num_input_pipelines=num_pipelines,
                input_pipeline_id=replica_ids[0] // replicas_per_host,
                num_replicas_in_sync=strategy.num_replicas_in_sync,
            )
            with tf.device(host):
                dataset = dataset_fn(context, replica_batch_size * len(replica_ids))
                self.iterators.append(iter(dataset))
        self.checkpoint = tf.train.Checkpoint(iterators=self.iterators)

    def next(self):
        """The next optimizer step's batch as a per-replica value (for `strategy.run`)."""
        host_batches = []
        for host, iterator in zip(self.hosts, self.iterators, strict=True):
            with tf.device(host):
                host_batches.append(next(iterator))

        def replica_batch(context):
            host_index, slot = self._slots[context.replica_id_in_sync_group]
            begin, end = slot * self.replica_batch_size, (slot + 1) * self.replica_batch_size
            with tf.device(self.hosts[host_index]):  # slice on the host, copy only the slice to the device
                return {name: t[begin:end] for name, t in host_batches[host_index].items()}

        return self.strategy.experimental_distribute_values_from_function(replica_batch)

"""Training input for a tf.distribute strategy that can be checkpointed, so a resumed run reads on exactly.

tf.distribute's own distributed iterators (`distribute_datasets_from_function`) cannot be saved in a
tf.train.Checkpoint in TF 2.21 (they are not trackable, and their per-device prefetch buffers hold batches
that a checkpoint would lose). So, like `distribute_datasets_from_function` does inside, the input runs one
tf.data pipeline per input host (the CPU of each host that owns replicas), each told its place by a
`tf.distribute.InputContext`; but here each pipeline is a plain tf.data iterator, which a checkpoint saves
with its shuffle buffer and file positions. Every optimizer step, each host's iterator yields the batch of
all its local replicas; `strategy.experimental_distribute_values_from_function` hands every replica its
host's batch (no op), and each replica cuts out its contiguous slice of R = replica_batch_size sequences on
the host, in the replica function (`replica_rows`), so only the slice is copied to its device and the ops
run per step outside the replica function do not grow with the number of replicas:

    host batch [replicas_on_host * R, ...]  ->  replica k of the host: rows [k * R, (k + 1) * R)

With one host that makes the global batch of a step the same consecutive sequences whatever the number of
replicas: 1 replica x 4 micro-batches and 4 replicas x 1 micro-batch train on identical data.
"""

import tensorflow as tf


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
        self._slots = {}  # of this task's replicas
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
        """The next optimizer step's batches as a per-replica value (for `strategy.run`): each replica gets
        its host's whole batch; `replica_rows` cuts out its own rows."""
        host_batches = []
        for host, iterator in zip(self.hosts, self.iterators, strict=True):
            with tf.device(host):
                host_batches.append(next(iterator))
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: host_batches[self._slots[context.replica_id_in_sync_group][0]]
        )

    def replica_rows(self, host_batch):
        """This replica's R rows of its host's batch (call in the replica context), sliced on the host."""
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        first_rows = [0] * self.strategy.num_replicas_in_sync  # by global replica id; other tasks' unused
        for global_id, (_, slot) in self._slots.items():
            first_rows[global_id] = slot * self.replica_batch_size
        begin = tf.gather(tf.constant(first_rows), replica_id)
        rows = {}
        for name, t in host_batch.items():
            with tf.device(t.device):
                size = [self.replica_batch_size, *t.shape[1:]]
                rows[name] = tf.ensure_shape(tf.slice(t, [begin] + [0] * (t.shape.rank - 1), size), size)
        return rows

    def free(self):
        """Drops the iterators now. A tf.data iterator freed during interpreter shutdown (by the cyclic
        garbage collector, when a tf.function graph holds it) can wait forever for its threads
        (tensorflow/tensorflow#21277); the trainer frees them when its run ends instead."""
        self.iterators.clear()
        self.checkpoint = None

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

The look-ahead (`Lookahead`): each replica keeps the rows of the NEXT step in variables on its own device,
so a step never waits for its input. In every step the replica trains on the rows it holds and, in the same
call, replaces them with the rows of the following step, read from the host iterator; nothing in the step
depends on that write, so the iterator read and the copy to the device run while the step computes:

    step n on replica k:   rows = buffer_k (the rows of step n)    ->  train on rows
                           buffer_k <- its rows of host batch n + 1    (no dependency on the training)

The iterators are therefore one step ahead of the model, and the buffer holds the step between: both are in
`checkpoint`, so a run resumed from any checkpoint trains on exactly the batches an uninterrupted run would.
A fresh run fills the buffer once, before its first step (`fill_lookahead`); the batch read ahead after a
run's last step is left unused (and saved with the final checkpoint, so a longer run can continue from it).
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


class Lookahead:
    """The rows of the next optimizer step, held on every replica's device (create in the strategy's scope).

    One variable per feature, SyncOnRead: each replica reads and writes its own copy, nothing is reduced
    across replicas (aggregation NONE makes a cross-replica read an error). `filled` is False until the
    first step's rows are written. `checkpoint` saves every local replica's copy, as the replica holds it.
    """

    def __init__(self, strategy, row_specs):
        def variable(initial_value, name, aggregation):
            return tf.Variable(
                initial_value,
                trainable=False,
                name=name,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=aggregation,
            )

        none = tf.VariableAggregation.NONE
        self.rows = {
            name: variable(tf.zeros(spec.shape, spec.dtype), f"lookahead_{name}", none)
            for name, spec in row_specs.items()
        }
        self.filled = variable(False, "lookahead_filled", tf.VariableAggregation.ONLY_FIRST_REPLICA)
        copies = {name: strategy.experimental_local_results(v) for name, v in self.rows.items()}
        local_replicas = range(len(strategy.extended.worker_devices))
        # Per local replica: {feature name: its variable on that replica's device}.
        replicas = [{name: copies[name][k] for name in self.rows} for k in local_replicas]
        self.checkpoint = tf.train.Checkpoint(filled=self.filled, replicas=replicas)

    def fill(self, rows):
        """Writes the first step's rows (in the replica context)."""
        for name, variable in self.rows.items():
            variable.assign(rows[name])
        self.filled.assign(True)

    def swap(self, next_rows):
        """Returns the rows held (this step's) and holds `next_rows` instead (in the replica context): the
        read comes first, the write after it (what orders what: trainer/loop.py's replica_step)."""
        with tf.name_scope(LOOKAHEAD_SCOPE):
            rows = {name: variable.read_value() for name, variable in self.rows.items()}
            for name, variable in self.rows.items():
                variable.assign(next_rows[name])
        return rows


LOOKAHEAD_SCOPE = "lookahead"  # the name scope of the look-ahead's reads and writes
LOOKAHEAD_KEY = "lookahead"  # its key in the input checkpoint


class DistributedInput:
    """Per-host tf.data iterators (checkpointable) feeding every replica of `strategy` its batch.

    `dataset_fn(input_context, batch_size)` returns the dataset of one host: batches of `batch_size`
    sequences (the batches of all replicas on that host for one optimizer step), reading the share of the
    data given by `input_context` (num_input_pipelines, input_pipeline_id).

    `lookahead` (the trainer always uses it) keeps the next step's rows on the devices; without it a step's
    rows are copied to the devices as part of the step (the baseline of
    `scripts/benchmarks/bench_train.py --host_overhead`).
    """

    def __init__(self, strategy, dataset_fn, replica_batch_size, lookahead=True):
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
        self.lookahead = None
        saved = {"iterators": self.iterators}
        if lookahead:
            with strategy.scope():
                self.lookahead = Lookahead(strategy, self.row_specs())
            saved[LOOKAHEAD_KEY] = self.lookahead.checkpoint
        self.checkpoint = tf.train.Checkpoint(**saved)

    def row_specs(self):
        """{feature name: tf.TensorSpec} of one replica's rows: [R, ...] of the host batch's [H * R, ...]."""
        specs = self.iterators[0].element_spec
        return {
            name: tf.TensorSpec([self.replica_batch_size, *spec.shape[1:]], spec.dtype)
            for name, spec in specs.items()
        }

    def next(self):
        """The next batch of every host's iterator as a per-replica value (for `strategy.run`): each replica
        gets its host's whole batch; `replica_rows` cuts out its own rows. With the look-ahead this is the
        batch of the step after the one about to run."""
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

    def fill_lookahead(self):
        """Reads the first step's batch into the look-ahead of every replica, when it holds none yet (call in
        the device loop's tf.function, in the cross-replica context, before the steps). A resumed run
        restored its rows, and later calls find it filled: then this reads nothing."""
        if self.lookahead is None:
            return

        def fill(host_batch):
            self.lookahead.fill(self.replica_rows(host_batch))

        tf.cond(
            self.lookahead.filled.read_value(),
            lambda: None,
            lambda: self.strategy.run(fill, args=(self.next(),)),
        )

    def step_rows(self, host_batch):
        """The rows this replica trains on in this step (call in the replica context; `host_batch` from
        `next`). With the look-ahead: the rows it holds, and its rows of `host_batch` (the next step's)
        take their place; without: its rows of `host_batch`."""
        rows = self.replica_rows(host_batch)
        return rows if self.lookahead is None else self.lookahead.swap(rows)

    def restore(self, path):
        """Restores the iterators' positions (and the look-ahead's rows) that `checkpoint` saved at `path`.

        Raises ValueError saying why a saved input position does not fit this input."""
        try:
            saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
            without_lookahead = self.lookahead is not None and LOOKAHEAD_KEY not in saved
            if not without_lookahead:
                self.checkpoint.restore(path).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError):
            raise ValueError(
                "it holds the input position of another set-up (number of input hosts or replicas, batch "
                "size or training files)"
            ) from None
        if without_lookahead:
            raise ValueError(
                "it was saved without the look-ahead rows (by an earlier version of the trainer), so the "
                "input cannot resume exactly from it"
            )

    def free(self):
        """Drops the iterators now. A tf.data iterator freed during interpreter shutdown (by the cyclic
        garbage collector, when a tf.function graph holds it) can wait forever for its threads
        (tensorflow/tensorflow#21277); the trainer frees them when its run ends instead."""
        self.iterators.clear()
        self.checkpoint = None

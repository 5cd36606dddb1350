"""The data tool as an Apache Beam pipeline, for corpora or deadlines beyond one machine.

    python -m data.create_pretraining_data --input=gs://b/wiki/*.jsonl.gz --output_dir=gs://b/seq128 \
        --vocab_file=gs://b/vocab.txt --num_shards=1024 --runner=DataflowRunner --project=P --region=R \
        --temp_location=gs://b/tmp --setup_file=./setup.py

The driver does what the local tool does before its workers start (data.create_pretraining_data.plan_creation:
check the output directory, open and partition the corpus, install vocab.txt), then Beam builds one shard
per element with the local tool's own `build_shard`, and a last step writes meta.json from the shards'
statistics. The shards and meta.json are therefore the same bytes as the local tool's for the same
settings: every shard's randomness comes from (random_seed, shard index) alone, never from the worker
that builds it or the order of the work (tests/data/test_beam_pipeline.py checks it on the DirectRunner).

A shard is written under a temporary name and renamed when complete, so a retried bundle rewrites it
whole. Learning a vocabulary (--learn_vocab) reads the whole corpus in the driver: for a large corpus
learn it once (on a sample) and pass --vocab_file.
"""

import logging

from data.create_pretraining_data import build_shard, finish_creation, plan_creation, remove_incomplete_files

log = logging.getLogger(__name__)


def create_with_beam(config, pipeline_args, corpus=None):
    """Runs the creation of `config` (a CreationConfig) as a Beam pipeline with Beam's `pipeline_args`
    (e.g. ["--runner=DirectRunner"]); returns the meta dict written to meta.json."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    plan = plan_creation(config, corpus)
    log.info(
        "settings: %s; Beam: %s", dict(config.shard_settings(), num_shards=config.num_shards), pipeline_args
    )
    # The plan goes to the last step as a side input of one element: it holds the corpus description and
    # the vocabulary's path, the same on every worker.
    try:
        with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
            plan_view = beam.pvalue.AsSingleton(pipeline | "plan" >> beam.Create([plan]))
            (
                pipeline
                | "shards" >> beam.Create(plan.tasks)
                | "spread" >> beam.Reshuffle()
                | "build" >> beam.Map(build_shard)
                | "collect" >> beam.combiners.ToList()
                | "meta.json" >> beam.Map(lambda stats, plan: finish_creation(plan, stats), plan_view)
            )
    except BaseException:
        remove_incomplete_files(config.output_dir)  # a failed shard's temporary file
        raise
    from data.meta import read_meta

    meta = read_meta(config.output_dir)
    if meta is None:
        raise RuntimeError(f"the Beam pipeline ended without writing the meta.json of {config.output_dir}")
    return meta

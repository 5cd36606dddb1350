"""Pretraining-data creation speed: data.create_pretraining_data against a plain-Python generator.

    python scripts/benchmarks/bench_data.py         # embedded corpus x4, dupe_factor 10: ~3 minutes
    python scripts/benchmarks/bench_data.py --copies=1 --repeats=3 --vocab_size=30522
    python scripts/benchmarks/bench_data.py --copies=1 --dupe_factor=2   # short

The baseline is scripts/benchmarks/pure_python_pretraining_data.py: Google's algorithm (google-research/bert's
create_pretraining_data.py) in one Python process, with a plain-Python BERT tokenizer, tf.train.Example
protos built one by one. Ours runs with 1 and with 2 processes (each process keeps several threads busy:
see data.create_pretraining_data). Every run reads the same Google-format text file -- the embedded corpus
written out --copies times, so that our fixed start-up (building the tokenizer, tracing the TensorFlow
functions, starting worker processes, which import TensorFlow) weighs about as little as on a real
corpus -- with the same vocabulary and settings, and writes the same record format; it is timed end to
end in wall-clock seconds, start-up included (nothing is reused between runs). Output: wall-clock and CPU
seconds (all threads and processes), documents/s, instances/s, MB of text per minute and the wall-clock
ratio to the baseline measured in the same invocation (best of --repeats, the rows interleaved), plus our
fixed start-up measured on a one-document corpus. On a loaded machine the ratio flatters the
multi-threaded runs (they get more of the shared cores); the CPU seconds do not.

The same creation also runs as an Apache Beam pipeline on each of --beam_runners (default: Beam's
DirectRunner, one in-process worker), writing the same bytes (data.beam_pipeline); its row shows what
Beam's own machinery costs on one machine, the price of being able to run on a cluster.
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts", "benchmarks")]

import pure_python_pretraining_data as baseline  # noqa: E402

from data.beam_pipeline import create_with_beam  # noqa: E402
from data.corpus import embedded_documents  # noqa: E402
from data.create_pretraining_data import CreationConfig, _builders, create_pretraining_data  # noqa: E402
from data.vocab import learn_vocab, load_vocab, write_vocab  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--max_predictions_per_seq", type=int, default=20)
    parser.add_argument("--vocab_size", type=int, default=8192, help="learned from the corpus (not timed)")
    parser.add_argument("--vocab_file", help="use this vocab.txt instead of learning one")
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--copies", type=int, default=4, help="times the embedded corpus is written out")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="comma-separated process counts for our runs")
    parser.add_argument("--beam_runners", default="DirectRunner", help="comma-separated; empty: none")
    return parser.parse_args(argv)


def write_corpus(path, copies):
    documents = embedded_documents()
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            for document in documents:
                f.write("\n".join(document) + "\n\n")
    return copies * len(documents), os.path.getsize(path)


def cpu_seconds():
    """User + system CPU time of this process and of its finished child processes (spawned workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run):
    """(wall seconds, CPU seconds, *run())."""
    started, cpu = time.perf_counter(), cpu_seconds()
    result = run()
    return (time.perf_counter() - started, cpu_seconds() - cpu, *result)


def time_baseline(corpus, vocab_path, work_dir, args):
    settings = argparse.Namespace(
        max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=0.15,
        short_seq_prob=0.1,
        dupe_factor=args.dupe_factor,
        random_seed=12345,
        do_lower_case=True,
        do_whole_word_mask=False,
    )
    outputs = [os.path.join(work_dir, f"baseline-{i}.tfrecord") for i in range(args.num_shards)]
    return timed(lambda: baseline.create([corpus], vocab_path, outputs, settings))


def our_config(corpus, vocab_path, out, args, num_workers):
    return CreationConfig(
        input=corpus,
        output_dir=out,
        vocab_file=vocab_path,
        max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq,
        dupe_factor=args.dupe_factor,
        num_shards=args.num_shards,
        num_workers=num_workers,
        overwrite=True,
        quiet=True,
    )


def time_ours(corpus, vocab_path, work_dir, args, num_workers):
    _builders.clear()  # count the tokenizer and tracing start-up in every run
    config = our_config(corpus, vocab_path, os.path.join(work_dir, f"ours-{num_workers}"), args, num_workers)

    def run():
        meta = create_pretraining_data(config)
        return meta["num_documents"], meta["num_instances"]

    return timed(run)


def time_beam(corpus, vocab_path, work_dir, args, runner):
    _builders.clear()
    config = our_config(corpus, vocab_path, os.path.join(work_dir, f"beam-{runner}"), args, None)

    def run():
        meta = create_with_beam(config, [f"--runner={runner}"])
        return meta["num_documents"], meta["num_instances"]

    return timed(run)


def main(argv=None):
    args = parse_args(argv)
    work_dir = tempfile.mkdtemp(prefix="bench_data_")
    try:
        corpus = os.path.join(work_dir, "embedded.txt")
        started = time.perf_counter()
        num_documents, corpus_bytes = write_corpus(corpus, args.copies)
        seconds = time.perf_counter() - started
        print(f"corpus: the embedded corpus x{args.copies}: {num_documents} documents, "
              f"{corpus_bytes / 1e6:.2f} MB (extracted in {seconds:.0f} s, not timed)")  # fmt: skip
        vocab_path = os.path.join(work_dir, "vocab.txt")
        if args.vocab_file:
            write_vocab(load_vocab(args.vocab_file), vocab_path)
        else:
            started = time.perf_counter()
            with open(corpus, encoding="utf-8") as f:
                sentences = [line.strip() for line in f if line.strip()]
            write_vocab(learn_vocab(sentences, args.vocab_size), vocab_path)
            seconds = time.perf_counter() - started
            print(f"vocab: learned {args.vocab_size} tokens in {seconds:.0f} s (not timed)")
        print(f"settings: dupe_factor={args.dupe_factor} max_seq_length={args.max_seq_length} "
              f"max_predictions_per_seq={args.max_predictions_per_seq} num_shards={args.num_shards}, "
              f"best of {args.repeats}")  # fmt: skip

        runs = {
            "baseline (plain Python, 1 process)": lambda: time_baseline(corpus, vocab_path, work_dir, args)
        }
        for n in (int(w) for w in args.workers.split(",")):
            label = f"ours ({n} process{'es' if n > 1 else ''})"
            runs[label] = lambda n=n: time_ours(corpus, vocab_path, work_dir, args, n)
        for runner in filter(None, args.beam_runners.split(",")):
            runs[f"ours on Beam's {runner}"] = lambda r=runner: time_beam(
                corpus, vocab_path, work_dir, args, r
            )
        best = {}
        for _ in range(args.repeats):
            for label, run in runs.items():  # interleaved, so load changes hit every row alike
                seconds, cpu, documents, instances = run()
                if label not in best or seconds < best[label][0]:
                    best[label] = (seconds, cpu, documents, instances)
                print(f"  {label}: {seconds:.1f} s ({cpu:.1f} s CPU), {instances} instances", flush=True)
        tiny = os.path.join(work_dir, "one_document.txt")
        with open(corpus, encoding="utf-8") as source, open(tiny, "w", encoding="utf-8") as f:
            f.write(source.read().split("\n\n")[0] + "\n")
        startup = min(time_ours(tiny, vocab_path, work_dir, args, 1)[0] for _ in range(args.repeats))
        base_seconds = best[next(iter(runs))][0]
        print()
        print(f"| {'run':36s} | seconds | CPU s | documents/s | instances/s | MB text/min | vs baseline |")
        print(f"|{'-' * 38}|--------:|------:|------------:|------------:|------------:|------------:|")
        for label, (seconds, cpu, documents, instances) in best.items():
            rates = f"{documents / seconds:11,.0f} | {instances / seconds:11,.0f} "
            print(
                f"| {label:36s} | {seconds:7.1f} | {cpu:5.1f} | {rates}"
                f"| {corpus_bytes / 1e6 / seconds * 60:11.2f} | {base_seconds / seconds:10.1f}x |"
            )
        print(f"\nour fixed start-up (a one-document corpus, 1 process): {startup:.1f} s")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The demo's fine-tuning task, built from the embedded corpus: which library a documentation sentence comes
from (the Python standard library, numpy or TensorFlow), learnt from very few labelled sentences.

A document is one module's docstrings (data/corpus.py). Every fifth module of each library (in the corpus's
order) is held out, so no evaluation sentence shares a module with a training sentence. Sentences that name
their library (numpy, np., tensorflow, tf., keras) or have fewer than 6 words are dropped, then each library
gives the same number of sentences (the smallest library's count, capped), so always answering one library
scores 1/3. The held-out set is drawn with a fixed seed (600 sentences per library: the same for every
seed); the training set, 16 sentences per library (48 in all: few labels, where what the encoder learnt
from unlabelled text matters), is drawn with the given seed, so each seed of the demo sees other labels.

    python -m finetune.library_task --output_dir=runs/demo/library/seed-0 --seed=0    # train.tsv, dev.tsv
"""

import argparse
import functools
import os
import random
import re

from data import corpus

LIBRARIES = ("stdlib", "numpy", "tensorflow")  # the order of data.corpus's embedded roots
GIVEAWAY = re.compile(r"numpy|tensorflow|keras|\bnp\.|\btf\.", re.IGNORECASE)
MIN_WORDS = 6
HELD_OUT_EVERY = 5
TRAIN_PER_LIBRARY = 16
EVAL_PER_LIBRARY = 600
HELD_OUT_SEED = 0  # the held-out sample is the same whatever the training seed


@functools.lru_cache(maxsize=2)
def library_documents(max_documents=None):
    """{library: (document, ...)} of the embedded corpus (the first `max_documents` modules of each);
    parsed once per process."""
    # data.corpus keeps the per-library roots to itself; its module walk is reused as it is.
    roots = corpus._embedded_roots()
    documents = {}
    for library, (_, root) in zip(LIBRARIES, roots, strict=True):
        documents[library] = []
        for document in corpus._module_documents(root):
            documents[library].append(tuple(document))
            if max_documents is not None and len(documents[library]) >= max_documents:
                break
        documents[library] = tuple(documents[library])
    return documents


def usable(sentence):
    return len(sentence.split()) >= MIN_WORDS and not GIVEAWAY.search(sentence)


def split_by_document(documents, train_per_library, eval_per_library, seed=0):
    """(train rows, eval rows) of (sentence, library), balanced over the libraries, held out by document;
    `seed` draws the training rows, the eval rows are drawn with HELD_OUT_SEED."""
    pools = {}
    for library, docs in documents.items():
        held_out = [s for i, d in enumerate(docs) if i % HELD_OUT_EVERY == 0 for s in d if usable(s)]
        kept = [s for i, d in enumerate(docs) if i % HELD_OUT_EVERY != 0 for s in d if usable(s)]
        pools[library] = (sorted(set(kept)), sorted(set(held_out) - set(kept)))
    train_count = min(train_per_library, *(len(train) for train, _ in pools.values()))
    eval_count = min(eval_per_library, *(len(held) for _, held in pools.values()))
    train_rng, eval_rng = random.Random(seed), random.Random(HELD_OUT_SEED)
    train_rows, eval_rows = [], []
    for library, (train, held) in pools.items():
        train_rows += [(s, library) for s in train_rng.sample(train, train_count)]
        eval_rows += [(s, library) for s in eval_rng.sample(held, eval_count)]
    train_rng.shuffle(train_rows)
    eval_rng.shuffle(eval_rows)
    return train_rows, eval_rows


def write_tsv(path, rows):
    """sentence<TAB>label lines under a header, written under a temporary name and renamed."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for sentence, label in rows:
            f.write(f"{' '.join(sentence.split())}\t{label}\n")
    os.replace(temporary, path)


def write_library_task(
    output_dir,
    train_per_library=TRAIN_PER_LIBRARY,
    eval_per_library=EVAL_PER_LIBRARY,
    max_documents=None,
    seed=0,
):
    """Writes output_dir/train.tsv and dev.tsv (dev.tsv last); returns (train rows, eval rows)."""
    train_rows, eval_rows = split_by_document(
        library_documents(max_documents), train_per_library, eval_per_library, seed
    )
    os.makedirs(output_dir, exist_ok=True)
    write_tsv(os.path.join(output_dir, "train.tsv"), train_rows)
    write_tsv(os.path.join(output_dir, "dev.tsv"), eval_rows)
    return train_rows, eval_rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--train_per_library", type=int, default=TRAIN_PER_LIBRARY)
    parser.add_argument("--eval_per_library", type=int, default=EVAL_PER_LIBRARY)
    parser.add_argument("--seed", type=int, default=0, help="draws the training sentences")
    args = parser.parse_args()
    train_rows, eval_rows = write_library_task(
        args.output_dir, args.train_per_library, args.eval_per_library, seed=args.seed
    )
    print(f"{args.output_dir}: {len(train_rows)} training and {len(eval_rows)} held-out sentences")


if __name__ == "__main__":
    main()

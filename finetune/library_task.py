"""The demo's fine-tuning task, built from the embedded corpus: which library a documentation sentence comes
from (the Python standard library, numpy or TensorFlow).

A document is one module's docstrings (data/corpus.py). Every fifth module of each library (in the corpus's
order) is held out, so no evaluation sentence shares a module with a training sentence. Sentences that name
their library (numpy, np., tensorflow, tf., keras) or have fewer than 6 words are dropped, then each library
gives the same number of sentences (the smallest library's count, capped), drawn with a fixed seed: always
answering one library scores 1/3. The demo trains on 300 sentences per library (900 in all, where what the
encoder already knows matters most) and evaluates on 600 per library.

    python -m finetune.library_task --output_dir=runs/demo/library     # train.tsv, dev.tsv
"""

import argparse
import os
import random
import re

from data import corpus

LIBRARIES = ("stdlib", "numpy", "tensorflow")  # the order of data.corpus's embedded roots
GIVEAWAY = re.compile(r"numpy|tensorflow|keras|\bnp\.|\btf\.", re.IGNORECASE)
MIN_WORDS = 6
HELD_OUT_EVERY = 5


def library_documents(max_documents=None):
    """{library: [document, ...]} of the embedded corpus (the first `max_documents` modules of each)."""
    # data.corpus keeps the per-library roots to itself; its module walk is reused as it is.
    roots = corpus._embedded_roots()
    documents = {}
    for library, (_, root) in zip(LIBRARIES, roots, strict=True):
        documents[library] = []
        for document in corpus._module_documents(root):
            documents[library].append(document)
            if max_documents is not None and len(documents[library]) >= max_documents:
                break
    return documents


def usable(sentence):
    return len(sentence.split()) >= MIN_WORDS and not GIVEAWAY.search(sentence)


def split_by_document(documents, train_per_library, eval_per_library, seed=0):
    """(train rows, eval rows) of (sentence, library), balanced over the libraries, held out by document."""
    rng = random.Random(seed)
    pools = {}
    for library, docs in documents.items():
        held_out = [s for i, d in enumerate(docs) if i % HELD_OUT_EVERY == 0 for s in d if usable(s)]
        kept = [s for i, d in enumerate(docs) if i % HELD_OUT_EVERY != 0 for s in d if usable(s)]
        pools[library] = (sorted(set(kept)), sorted(set(held_out) - set(kept)))
    train_count = min(train_per_library, *(len(train) for train, _ in pools.values()))
    eval_count = min(eval_per_library, *(len(held) for _, held in pools.values()))
    train_rows, eval_rows = [], []
    for library, (train, held) in pools.items():
        train_rows += [(s, library) for s in rng.sample(train, train_count)]
        eval_rows += [(s, library) for s in rng.sample(held, eval_count)]
    rng.shuffle(train_rows)
    rng.shuffle(eval_rows)
    return train_rows, eval_rows


def write_tsv(path, rows):
    """sentence<TAB>label lines under a header, written under a temporary name and renamed."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for sentence, label in rows:
            f.write(f"{' '.join(sentence.split())}\t{label}\n")
    os.replace(temporary, path)


def write_library_task(output_dir, train_per_library=300, eval_per_library=600, max_documents=None, seed=0):
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
    parser.add_argument("--train_per_library", type=int, default=300)
    parser.add_argument("--eval_per_library", type=int, default=600)
    args = parser.parse_args()
    train_rows, eval_rows = write_library_task(args.output_dir, args.train_per_library, args.eval_per_library)
    print(f"{args.output_dir}: {len(train_rows)} training and {len(eval_rows)} held-out sentences")


if __name__ == "__main__":
    main()

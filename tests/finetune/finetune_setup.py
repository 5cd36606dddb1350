"""Small task files and a tiny vocabulary and model that the fine-tuning tests write."""

import json

import bert

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "mat",
    "rug",
    "red",
    "blue",
    "big",
    "small",
    "is",
    "was",
    "and",
    "or",
    "not",
    "good",
    "bad",
    "film",
    "movie",
    "very",
    "quite",
    "who",
    "what",
    "where",
    "when",
    "did",
    "denver",
    "broncos",
    "won",
    "super",
    "bowl",
    "in",
    "city",
    "team",
    "played",
    "game",
]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "##s", *WORDS]

TINY_BERT = {
    "vocab_size": len(VOCAB),
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}


def write_model_files(directory):
    """vocab.txt and bert_config.json of the tiny model; returns (vocab path, bert_config path)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    config = directory / "bert_config.json"
    bert.BertConfig.from_dict(TINY_BERT).to_json_file(str(config))
    return str(vocab), str(config)


SST2_TRAIN = [
    ("a very good film", 1),
    ("a bad movie", 0),
    ("good and big", 1),
    ("not good", 0),
    ("quite good movie", 1),
    ("very bad film", 0),
    ("a good dog", 1),
    ("the bad cat", 0),
]


def write_sst2(directory, train=SST2_TRAIN, dev=SST2_TRAIN[:4]):
    """GLUE's SST-2 layout: a header, then sentence<TAB>label."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (directory / name).write_text("\n".join(lines) + "\n")
    return str(directory)


def write_squad(path, paragraphs):
    """An official-format SQuAD v1.1 file of [(context, [(id, question, answer, answer_start)])]."""
    data = [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": context,
                    "qas": [
                        {"id": qid, "question": q, "answers": [{"text": a, "answer_start": s}]}
                        for qid, q, a, s in questions
                    ],
                }
                for context, questions in paragraphs
            ],
        }
    ]
    path.write_text(json.dumps({"data": data, "version": "1.1"}))
    return str(path)


def config_yaml(path, task_yaml, model_dir, vocab, bert_config, extra=""):
    path.write_text(
        f"""
task:
{task_yaml}
model:
  bert_config: {bert_config}
  vocab_file: {vocab}
schedule:
  peak_learning_rate: 1.0e-3
  epochs: 2
train:
  batch_size: 4
  eval_batch_size: 3
  log_every_steps: 1
  checkpoint_every_steps: 2
runtime:
  model_dir: {model_dir}
  strategy: one_device
{extra}"""
    )
    return str(path)

# The pretraining application for GPU hosts and clusters: TensorFlow's official GPU image of the pinned
# version (CUDA and cuDNN included), the pinned requirements, the code, a non-root user. The training data
# and the runs live outside the image, in the volumes /data and /model.
#
#   docker build -t bert-lamb .
#   docker run --rm --gpus=all -v /path/to/data:/data:ro -v /path/to/runs:/model bert-lamb \
#       --config=phase1.yaml --set=data.train_files='/data/seq128/*.tfrecord' --model_dir=/model/phase1
#
# The working directory is /model, so relative paths of a config (the demo's data, runs/...) land in the
# mounted volume. Build with --build-arg UID=$(id -u) to write the volume as your own user.
#
# The data tool runs from the same image (the code is on PYTHONPATH; add --runner=DirectRunner to run it as
# an Apache Beam pipeline, which the image also holds):
#
#   docker run --rm -v /path/to/corpus:/data:ro -v /path/to/out:/model --entrypoint python3 bert-lamb \
#       -m data.create_pretraining_data --input=/data --output_dir=/model/seq128 --learn_vocab \
#       --vocab_size=30522 --max_seq_length=128 --max_predictions_per_seq=20 --num_shards=256

# Keep this tag equal to the tensorflow pin of requirements.txt (tests/scripts/test_dockerfile.py checks it).
FROM tensorflow/tensorflow:2.21.0-gpu

ARG UID=1000
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/opt/bert-lamb

WORKDIR /opt/bert-lamb

# The dependencies first (requirements-beam.txt: the application's and Apache Beam), in a layer that outlives
# code changes. TensorFlow comes with the base image: its
# version is the pinned one (checked first), so pip finds the pin satisfied and keeps the image's build; the
# check after the install fails the build if anything replaced it or if a package does not import.
COPY requirements.txt requirements-beam.txt constraints.txt ./
RUN TF_PINNED="$(sed -n 's/^tensorflow==//p' requirements.txt)" \
 && TF_IMAGE="$(python3 -c 'import tensorflow as tf; print(tf.__version__)')" \
 && { [ "$TF_IMAGE" = "$TF_PINNED" ] \
      || { echo "the base image has TensorFlow $TF_IMAGE, requirements.txt pins $TF_PINNED: fix FROM" >&2; exit 1; }; } \
 && python3 -m pip install -r requirements-beam.txt -c constraints.txt \
 && python3 -c 'import sys, tensorflow as tf, tensorflow_text, tensorflow_datasets, absl, yaml, pyarrow, apache_beam; \
print("TensorFlow", tf.__version__, "built with CUDA:", tf.test.is_built_with_cuda()); \
sys.exit(0 if tf.__version__ == sys.argv[1] else "TensorFlow " + tf.__version__ + " is not the pinned " + sys.argv[1])' \
    "$TF_PINNED"

COPY . .

RUN useradd --create-home --uid "$UID" --shell /bin/bash bert \
 && mkdir -p /data /model \
 && chown bert:bert /model

USER bert
WORKDIR /model
VOLUME ["/data", "/model"]

ENTRYPOINT ["python3", "/opt/bert-lamb/run_pretraining.py"]
CMD ["--helpfull"]

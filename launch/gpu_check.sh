#!/usr/bin/env bash
# Every GPU figure docs/benchmarks.md quotes, in one call that ends within 8 minutes on an
# H100: tests/test_gpu.py; `benchmark train` at DCGAN-64 for vanilla, bn and wn, eager and
# with CUDA graphs (ms, kernels and the GPU's busy share per iteration); `benchmark packed`
# at DCGAN-64 WN for K = 1..16; the evaluator's and the sample-quality metrics' seconds.
# Each step has its own time limit (gansweep/benchmark/gpu_check.py, STEPS); one that runs
# over is recorded as such and the rest still run.
#
#   bash launch/gpu_check.sh OUT_DIR             # from the repository's root, on the GPU
#   bash launch/gpu_check.sh --dry-run OUT_DIR   # on a CPU: every step at tiny sizes
#
# It writes OUT_DIR/gpu_check.md (one table, printed last), OUT_DIR/gpu_check.json (every
# figure, each command, the versions) and OUT_DIR/steps.log (everything the steps said).
#
# What the machine lacks is installed from a folder of wheels, without a network
# (`--wheels DIR`, default .whl/ in the repository, which git ignores), into a scratch folder
# put on the steps' PYTHONPATH, with gansweep itself built from the tree. For a machine
# with Python 3.12 on x86-64 Linux that has torch, torchvision, lightning, torchmetrics,
# numpy, scipy, scikit-learn, matplotlib, pillow, tqdm, pytest, requests and PyYAML but none
# of the rest (25 MiB in all; the versions CI tests; protobuf, click and typing-extensions
# ride along because W&B and pydantic need newer ones than such an image may have), run
# this where pip reaches PyPI, in the repository's root:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1 submitit==1.5.4 hydra-submitit-launcher==1.2.0 lmdb==3.0.0 torch-fidelity==0.4.0 wandb==0.31.0 cwevals==0.0.1b1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 platformdirs==4.14.9 protobuf==7.36.2 click==8.5.1 distro==1.9.0 sniffio==1.3.1 opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-semantic-conventions==0.66b2 opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-exporter-http-transport==0.66b2 opentelemetry-exporter-otlp-common==0.66b2 opentelemetry-exporter-otlp-proto-common==1.45.2 opentelemetry-proto==1.45.2 googleapis-common-protos==1.76.0 && python3 -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3
#
# (antlr4-python3-runtime, which omegaconf needs, is published only as source: the second
# command builds its pure-Python wheel.) Copy .whl/ to the GPU machine with the tree. The
# work is gansweep/benchmark/gpu_check.py's, which needs only the standard library to
# start; PYTHON names another interpreter than python3.
set -euo pipefail
if [[ ! -f launch/gpu_check.sh || ! -d gansweep ]]; then
    echo "gpu_check.sh: run it from the repository's root (the folder with launch/ and" \
         "gansweep/): cd there first" >&2
    exit 2
fi
exec "${PYTHON:-python3}" -m gansweep.benchmark.gpu_check "$@"

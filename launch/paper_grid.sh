#!/usr/bin/env bash
# The paper's whole grid with the paper's settings, on a SLURM cluster with GPUs:
# {vanilla, BN, WN} x {DCGAN, ResNet} x {CelebA, LSUN bedroom, CIFAR-10}, 18 jobs, one GPU each.
#
#   launch/paper_grid.sh PARTITION [more overrides...]
#   e.g. launch/paper_grid.sh gpu hydra.launcher.account=myproject seed=0,1,2
#
# Data: $GANSWEEP_DATA/{celeba,lsun_bedroom,cifar10} (README "Data sets"); a missing one fails
# its jobs at once with the path it looked at, the others go on.
# Re-running the same line resumes: finished runs are skipped, the rest continue from their
# last checkpoint. Jobs requeue themselves at their time limit (hydra.launcher.timeout_min).
set -euo pipefail
partition=${1:?usage: launch/paper_grid.sh PARTITION [overrides...]}
shift

# Paper settings (README, "The method", Training): batch 32, RMSProp, lr per architecture (conf/arch), up to
# 1e6 iterations, running test on 200 held-out images with 50 steps every 500 iterations
# (the granularity of the paper's table), final test on 2000 held-out images.
exec python -m gansweep -m hydra/launcher=slurm \
    hydra.launcher.partition="$partition" \
    norm=vanilla,bn,wn arch=dcgan,resnet dataset=celeba,lsun_bedroom,cifar10 \
    train.iters=1000000 train.batch_size=32 \
    recon.every=500 recon.n_images=200 recon.steps=50 \
    final.n_images=2000 \
    train.ckpt_every=5000 train.sample_every=5000 \
    dataset.num_workers=8 \
    "$@"

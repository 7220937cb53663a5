"""One prepared GPU check (``make gpu-check``, docs/gpu_check.md): equality before speed, then timings.

On one GPU, in order, each check in its own process with its own time limit (``plan.CHECKS``):
0 the machine; 1 the metric suite, ``occo fuse`` and a training-step loss equal on CUDA and CPU;
2 the training step at the paper's size, fp32 / bf16 + channels_last, eager / compiled; 3 torchrun with
one NCCL process, save and resume; 4 fusion pairs/s; 5 metric-suite triples/s; 6 the masks stage's
real-size models; 7 YOLOv5s and DeepLabV3+ training and validating with AMP. The report
(``reports/gpu_check.md``, also printed) is one table of statuses and figures with the ratios, then the
targets. Without CUDA it says so in one line and runs the CPU-possible checks at tiny sizes (a dry run
for CI). No network, no pretrained file, nothing beyond this checkout and ../shared (optional).
"""

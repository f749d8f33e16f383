# A cluster that builds its caches on Slurm and keeps the large CUDA images
# on each GPU node's local NVMe for Pyxis/Enroot (see docs/slurm.md).
#
#   cachectl -spec examples/slurm.hcl validate
#   cachectl -spec examples/slurm.hcl apply            # one sbatch array job on partition "cpu"
#   cachectl -spec examples/slurm.hcl stage            # one task per node of partition "gpu"
#   cachectl -spec examples/slurm.hcl list --determined

cachectl {
  store    = "/shared/containers/.store" # on the file system the nodes mount
  executor = "slurm"

  slurm {
    partition     = "cpu"
    account       = "hpc-admin"
    time_limit    = "2h"
    cpus_per_task = 16
    mem_per_task  = "16GiB"
    max_parallel  = 32
    sbatch_args   = ["--exclusive"]
    command       = "/shared/bin/cachectl" # the same cachectl on every node
  }
}

flavor "cuda" {
  images = [
    "nvcr.io/nvidia/pytorch:24.01-py3",
    "nvcr.io/nvidia/pytorch:24.05-py3",
    "determinedai/pytorch-ngc:0.38.1",
  ]
}

cache "sif" {
  runtime  = "apptainer"
  root     = "/shared/containers/sif"
  flavors  = ["cuda"]
  dir_mode = "2755"
}

cache "sqsh" {
  runtime  = "enroot"
  root     = "/shared/containers/enroot"
  flavors  = ["cuda"]
  dir_mode = "2755"
}

# Copies of the .sqsh files on every GPU node: jobs start them with
#   srun --container-image=/local/enroot/nvcr.io+nvidia+pytorch+24.05-py3.sqsh ...
node_cache "gpu_local" {
  from      = "sqsh"
  root      = "/local/enroot"
  partition = "gpu"
  max_size  = "400GiB"
  images    = ["nvcr.io/nvidia/pytorch:24.05-py3", "determinedai/pytorch-ngc:0.38.1"]
}

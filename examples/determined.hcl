# The image caches of a Determined cluster on Slurm/PBS: one cache per
# runtime the launcher may use, all on the shared file system that every
# compute node mounts.
#
#   cachectl -spec examples/determined.hcl validate
#   cachectl -spec examples/determined.hcl -var determined_version=0.35.1 plan

cachectl {
  store = "/shared/containers/.store" # blob store shared by all caches
}

variable "determined_version" {
  type        = string
  default     = "0.38.1"
  description = "Determined release whose default task images the caches hold."
}

variable "ngc_tags" {
  type        = list(string)
  default     = ["24.01-py3", "24.05-py3"]
  description = "Extra NVIDIA NGC PyTorch images for CUDA users."
}

variable "platform" {
  type    = string
  default = "linux/amd64"
}

locals {
  cpu_image  = determined_default_image(var.determined_version, "cpu")
  cuda_image = determined_default_image(var.determined_version, "cuda")
  rocm_image = determined_default_image(var.determined_version, "rocm")
  ngc        = [for t in var.ngc_tags : "nvcr.io/nvidia/pytorch:${t}"]
}

registry "docker.io" {
  mirror          = "mirror.internal:5000"
  ca_file         = "/etc/pki/tls/certs/registry-ca.pem"
  max_concurrency = 8
}

registry "nvcr.io" {
  auth_file       = "/etc/cachectl/nvcr-auth.json"
  max_concurrency = 4
}

flavor "cpu" {
  images = [local.cpu_image]
}

flavor "cuda" {
  images = concat([local.cuda_image], local.ngc)
}

flavor "rocm" {
  images = [local.rocm_image]
}

# Apptainer: the launcher looks images up under singularity_image_root by
# the reference as written: /shared/containers/sif/determinedai/pytorch-ngc:0.38.1
cache "sif" {
  runtime   = "apptainer"
  root      = "/shared/containers/sif"
  flavors   = ["cpu", "cuda", "rocm"]
  images    = ["docker.io/library/alpine:3.20"]
  platform  = var.platform
  owner     = "root"
  group     = "hpc"
  file_mode = "0644"
  dir_mode  = "2755"
  prune     = true

  # An image with a file name of its own, as the cluster's docs name it.
  image {
    ref  = "determinedai/environments:cuda-11.3-pytorch-1.10-tf-2.8-gpu-0.19.10"
    name = "cuda-11.3-pytorch-1.10-tf-2.8-gpu"
  }
}

# Enroot (Pyxis): enroot create /shared/containers/enroot/determinedai+pytorch-ngc+0.38.1.sqsh
cache "enroot" {
  runtime     = "enroot"
  root        = "/shared/containers/enroot"
  flavors     = ["cpu", "cuda"]
  owner       = "root"
  group       = "hpc"
  file_mode   = "0644"
  dir_mode    = "2755"
  compression = "zstd"
  prune       = true
}

# Podman: environment.image: oci-archive:/shared/containers/podman/determinedai+pytorch-ngc+0.38.1
cache "podman" {
  runtime = "podman"
  root    = "/shared/containers/podman"
  flavors = ["cpu"]
  prune   = false

  image {
    ref      = "docker.io/library/alpine:3.20"
    platform = "linux/arm64"
    name     = "alpine-3.20-arm64"
  }
}

# The spec `make demo` applies: two images from a registry on loopback into an
# Apptainer, an Enroot and a Podman cache under ./demo. examples/demo.sh sets
# the variables; on a cluster you would write the values in.

variable "registry" {
  description = "host:port of the registry serving the demo images"
  default     = "127.0.0.1:5000"
}

variable "root" {
  description = "directory holding the three cache roots"
  default     = "/tmp/cachectl-demo"
}

locals {
  base = "${var.registry}/demo/base:1.0"
  app  = "${var.registry}/demo/app:2.1"
}

flavor "cpu" {
  images = [local.app]
}

cache "sif" {
  runtime   = "apptainer"
  root      = "${var.root}/sif"
  flavors   = ["cpu"]
  images    = [local.base]
  file_mode = "0644"
  dir_mode  = "0755"
  prune     = true
}

cache "enroot" {
  runtime = "enroot"
  root    = "${var.root}/enroot"
  flavors = ["cpu"]
  prune   = true
}

cache "podman" {
  runtime = "podman"
  root    = "${var.root}/podman"
  flavors = ["cpu"]
  images  = [local.base]
  prune   = true
}

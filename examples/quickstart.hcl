# The smallest useful spec: one Apptainer cache with one image.
#
#   cachectl -spec examples/quickstart.hcl validate

cache "sif" {
  runtime = "apptainer"
  root    = "/shared/containers/sif"
  images  = ["docker.io/library/alpine:3.20"]
}

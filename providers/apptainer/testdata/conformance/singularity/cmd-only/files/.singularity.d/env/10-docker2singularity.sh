#!/bin/sh
export ONLY="${ONLY:-"1"}"

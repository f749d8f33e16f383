#!/bin/sh
export FROM_CONFIG="${FROM_CONFIG:-"1"}"

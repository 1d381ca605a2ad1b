#!/bin/bash
# usage: time.sh ROUNDS file...
R=$1; shift
for i in $(seq $R); do for f in "$@"; do echo "$f $(/work/main/.venv/bin/python /tmp/tfs/raw_probe.py $f 2 200)"; done; done

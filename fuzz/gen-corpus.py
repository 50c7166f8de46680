#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora fuzz/corpus/NAME/seed-* (deterministic).

fuzz_args: per function selector a few argument choices (see one_call in
fuzz_args.c: byte 0 picks the function, the next bytes its arguments).
fuzz_ops: short operation sequences over the regions (see fuzz_ops.c).
Inputs that found bugs live beside them as crash-*/timeout-* and are
never rewritten.  Run from the repository root: python3 fuzz/gen-corpus.py
"""
import os

def write(name, i, data):
    d = os.path.join("fuzz", "corpus", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-%03d" % i), "wb") as f:
        f.write(bytes(data))

# fuzz_args: function, then (pointer, length, device, flags, ...) choices
args = []
for fn in range(52):
    args.append([fn, 1, 7, 1, 0, 0, 0, 0])      # R0, 8 pages, COHERENT, flags 0
    args.append([fn, 12, 4, 2, 0, 1, 1, 1])     # R1, a page, PRIVATE
    args.append([fn, 6, 6, 4, 7, 3, 9, 9])      # the hole, 2 pages, a dynamic device
# a few sequences: migrate there and back, with sim accesses between
args.append([0, 1, 7, 1, 0, 38, 1, 7, 1, 39, 1, 4, 2, 0, 1, 7, 0, 0])
args.append([0, 12, 7, 2, 0, 34, 1, 12, 7, 1, 48, 1, 5, 37, 1, 12, 4])
args.append([20, 7, 2, 4, 0, 0, 1, 7, 5, 0, 25, 0])
for i, a in enumerate(args):
    write("fuzz_args", i, a)

# fuzz_ops: a seed byte (pattern; odd: region 2 untouched), then
# operations: (op, range byte a, range byte b, op arguments...)
ops = []
for op in range(24):
    ops.append([2 * op, op, 0, 7, 1, 0x41, 3, 1, 2])
    ops.append([2 * op + 1, op, 1, 2, 2, 0x42, 2, 1, 2, 1])
    ops.append([op, 3, 4, 7, 2, 0, op, 5, 0x83, 3, 7, 2, 4, 1, 3])
ops.append([0, 3, 0, 7, 2, 0, 12, 0, 7, 1, 1, 10, 3, 2, 1, 0x55, 9, 3, 2, 2, 2, 0, 7])
ops.append([1, 23, 1, 7, 1, 16, 0, 2, 0, 17, 0, 2, 0, 2, 3, 7])
for i, o in enumerate(ops):
    write("fuzz_ops", i, o)

#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_vhdx from test/tools/mkvhdx.py's cases.

Each input is a flags byte, then the child and the parent as sparse images
(see fuzz_vhdx.c): 32-bit size in KiB, a piece count, pieces (32-bit offset,
16-bit length, bytes) holding the non-zero 4 KiB pages of the first 8 MiB
(the structures; payload data beyond reads as zeros).
"""
import os
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools'))
import mkvhdx  # noqa: E402

PAGE = 4096
LIMIT = 8 << 20


def sparse(path):
    with open(path, 'rb') as f:
        data = f.read(LIMIT)
    size = os.path.getsize(path)
    runs, i = [], 0
    while i < len(data):
        if data[i:i + PAGE].strip(b'\0'):
            j = i
            while j < len(data) and data[j:j + PAGE].strip(b'\0') and j - i < 60 * 1024:
                j += PAGE
            chunk = data[i:j].rstrip(b'\0')
            runs.append((i, chunk))
            i = j
        else:
            i += PAGE
    runs = runs[:255]
    out = struct.pack('<IB', -(-size // 1024), len(runs))
    for off, chunk in runs:
        out += struct.pack('<IH', off, len(chunk)) + chunk
    return out


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'vhdx')
    os.makedirs(out_dir, exist_ok=True)
    pick = {'states', 'lss4k', 'header2_current', 'fixed', 'diff', 'diff_vhd_parent',
            'torn_header', 'torn_region', 'region_overlap', 'meta_duplicate',
            'bat_overlap', 'partial_without_parent', 'parent_mismatch', 'dirty_log',
            'bat_too_small', 'log_bat', 'log_torn', 'log_zero_then_bat', 'log_payload'}
    mkvhdx.SMALL_DATA = True
    with tempfile.TemporaryDirectory() as d:
        rows = mkvhdx.write_cases(d)
        for name, kind, path, code, regex, extra in rows:
            if name not in pick:
                continue
            parent = os.path.join(d, 'vparent.vhd' if 'vhd_parent' in name else 'base.vhdx')
            body = sparse(path) + (sparse(parent) if 'diff' in name or 'parent' in name else b'')
            for flags in (0, 1 | 4):
                with open(os.path.join(out_dir, '%s-%d' % (name, flags)), 'wb') as f:
                    f.write(bytes([flags]) + body)
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""Checks that the last 512 bytes of FILE are a valid *fixed* VHD footer.

  check_footer.py FILE [VIRTUAL_SIZE]

Independent of vhdup's C code (Microsoft "Virtual Hard Disk Image Format
Specification", hard disk footer): cookie "conectix", disk type 2 (fixed),
data offset 0xFFFFFFFFFFFFFFFF, file format version 0x00010000, current size
equal to the file size - 512 (and to VIRTUAL_SIZE when given), original size
likewise, checksum = one's complement of the byte sum with the checksum
field taken as zero. Exit 0 if valid; otherwise prints what is wrong on
stderr and exits 1. Python 3 standard library only.
"""
import os
import struct
import sys


def check(path, want_size=None):
    problems = []
    file_size = os.path.getsize(path)
    if file_size < 512 or file_size % 512 != 0:
        return ['file size %d is not a positive multiple of 512' % file_size]
    with open(path, 'rb') as f:
        f.seek(file_size - 512)
        ft = f.read(512)
    cookie = ft[0:8]
    features, version = struct.unpack('>II', ft[8:16])
    data_offset, = struct.unpack('>Q', ft[16:24])
    original_size, current_size = struct.unpack('>QQ', ft[40:56])
    disk_type, checksum = struct.unpack('>II', ft[60:68])
    calc = (~(sum(ft[:64]) + sum(ft[68:]))) & 0xFFFFFFFF
    if cookie != b'conectix':
        problems.append('cookie %r, not conectix' % cookie)
    if disk_type != 2:
        problems.append('disk type %d, not 2 (fixed)' % disk_type)
    if checksum != calc:
        problems.append('checksum 0x%08x, computed 0x%08x' % (checksum, calc))
    if data_offset != 0xFFFFFFFFFFFFFFFF:
        problems.append('data offset 0x%x, not all ones' % data_offset)
    if version != 0x00010000:
        problems.append('version 0x%08x' % version)
    if current_size != file_size - 512:
        problems.append('current size %d != file size %d - 512' % (current_size, file_size))
    if original_size != current_size:
        problems.append('original size %d != current size %d' % (original_size, current_size))
    if want_size is not None and current_size != want_size:
        problems.append('current size %d, expected %d' % (current_size, want_size))
    return problems


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    want = int(sys.argv[2]) if len(sys.argv) == 3 else None
    problems = check(sys.argv[1], want)
    if problems:
        for p in problems:
            sys.stderr.write('%s: bad fixed footer: %s\n' % (sys.argv[1], p))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

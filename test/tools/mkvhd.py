#!/usr/bin/env python3
"""Hand-built VHDs for vhdup's tests: the oracle, independent of the C code.

Writes fixed, dynamic and differencing VHDs byte by byte from the spec
(Microsoft "Virtual Hard Disk Image Format Specification": hard disk footer,
dynamic disk header, BAT, block bitmaps, parent locators) and, next to each,
the raw expansion the disk must read as. Python 3 standard library only.

  mkvhd.py cases OUTDIR       every edge case and malformed case, plus
                              OUTDIR/cases.tsv, the table the tests read:
                              name kind file expect_exit regex extra_args
                              (kind: good = expand must equal file.raw;
                               bad = must fail with expect_exit, stderr
                               matching regex; warn = succeeds, equals
                               file.raw, stderr matches regex)
  mkvhd.py spec SPEC.json     one disk (and its parents) from a JSON spec:
                              {"path", "kind": fixed|dynamic|differencing,
                               "size", "block_size", "creator",
                               "blocks": [{"index", "bitmap", "seed",
                                           "zero_every"}, ...] (file order),
                               "locators": ["W2ru", "W2ku", "MacX"],
                               "parent": {another spec}}
                              bitmap: "full", "none", "odd", "last" or
                              [[first_sector, count], ...]; writes PATH and
                              PATH.raw (and each parent's)
  mkvhd.py big OUT.vhd VSIZE MIB_OF_DATA [--block-size N]
                              a dynamic disk of VSIZE bytes holding
                              MIB_OF_DATA MiB spread evenly across it
                              (for the benchmark); its raw is OUT.vhd.raw
  mkvhd.py cmp A B            compares two (sparse) files by content,
                              reading only where either has data
                              (SEEK_DATA/SEEK_HOLE); exit 0 if equal
  mkvhd.py footer FILE        prints the fixed footer at the end of FILE as
                              JSON (fields, checksum_ok)
"""
import hashlib
import json
import os
import random
import struct
import sys

SECTOR = 512
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
UNALLOCATED = 0xFFFFFFFF
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z


# --- the format ------------------------------------------------------------

def checksum(buf, off):
    """One's complement of the byte sum, the 4 bytes at off taken as zero."""
    s = sum(buf) - sum(buf[off:off + 4])
    return (~s) & 0xFFFFFFFF


def chs(size):
    """CHS geometry by the spec's appendix algorithm."""
    total = size // SECTOR
    if total > 65535 * 16 * 255:
        total = 65535 * 16 * 255
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def footer(size, disk_type, uuid, data_offset, timestamp=0x2A000000, creator=b'vhdt',
           original=None, geometry=None, cookie=b'conectix', bad_checksum=False):
    cyl, heads, spt = geometry if geometry is not None else chs(size)
    b = bytearray(512)
    b[0:8] = cookie
    struct.pack_into('>IIQI4sI4sQQHBBI', b, 8, 2, 0x00010000, data_offset, timestamp, creator,
                     0x00010000, b'Wi2k', size if original is None else original, size, cyl,
                     heads, spt, disk_type)
    b[68:84] = uuid
    c = checksum(b, 64)
    struct.pack_into('>I', b, 64, c ^ (0x5A if bad_checksum else 0))
    return bytes(b)


def dynhdr(table_offset, max_entries, block_size, parent_uuid=bytes(16), parent_ts=0,
           parent_name='', locators=(), bad_checksum=False):
    b = bytearray(1024)
    b[0:8] = b'cxsparse'
    struct.pack_into('>QQIII', b, 8, 0xFFFFFFFFFFFFFFFF, table_offset, 0x00010000, max_entries,
                     block_size)
    b[40:56] = parent_uuid
    struct.pack_into('>I', b, 56, parent_ts)
    name = parent_name.encode('utf-16-be')[:512]
    b[64:64 + len(name)] = name
    for i, (code, space, length, off) in enumerate(locators):
        struct.pack_into('>4sIIIQ', b, 576 + 24 * i, code, space, length, 0, off)
    c = checksum(b, 36)
    struct.pack_into('>I', b, 36, c ^ (0x5A if bad_checksum else 0))
    return bytes(b)


def sector_data(seed, index):
    """512 bytes that differ for every (seed, sector) and are never zero."""
    d = hashlib.sha512(b'%s:%d' % (seed.encode(), index)).digest() * 8
    return b'\x01' + d[1:]


def block_data(seed, block_size, zero_every=0):
    """A block's data; with zero_every=k every k-th sector is all zero (so
    zeros inside allocated data are exercised too)."""
    out = bytearray()
    for s in range(block_size // SECTOR):
        out += bytes(SECTOR) if zero_every and s % zero_every == 0 else sector_data(seed, s)
    return bytes(out)


def bitmap_bits(spec, nsec):
    """A block's bitmap as a list of booleans. spec: 'full', 'none',
    'odd' (odd sectors), 'last' (only the last sector), or a list of
    (first, count) sector runs."""
    if spec == 'full':
        return [True] * nsec
    if spec == 'none':
        return [False] * nsec
    if spec == 'odd':
        return [s % 2 == 1 for s in range(nsec)]
    if spec == 'last':
        return [s == nsec - 1 for s in range(nsec)]
    bits = [False] * nsec
    for first, count in spec:
        for s in range(first, min(first + count, nsec)):
            bits[s] = True
    return bits


def bitmap_bytes(bits):
    """MSB first, padded to whole sectors."""
    n = (len(bits) + 7) // 8
    b = bytearray((n + SECTOR - 1) // SECTOR * SECTOR)
    for s, on in enumerate(bits):
        if on:
            b[s // 8] |= 0x80 >> (s % 8)
    return bytes(b)


class Block:
    def __init__(self, index, bitmap='full', seed=None, zero_every=0):
        self.index = index
        self.bitmap = bitmap
        self.seed = seed if seed is not None else 'b%d' % index
        self.zero_every = zero_every


class Disk:
    """One VHD layer. kind: 'fixed', 'dynamic' or 'differencing'. For a
    differencing disk, parent is the parent Disk (already written to
    parent.path). blocks are written to the file in the order given, so
    out-of-order blocks are just a shuffled list."""

    def __init__(self, path, kind, size, block_size=2 * MiB, blocks=(), parent=None,
                 max_entries=None, uuid=None, creator=b'vhdt', timestamp=0x2A000000,
                 locators=('W2ru', 'W2ku'), fixed_seed='fixed'):
        self.path = path
        self.kind = kind
        self.size = size
        self.block_size = block_size
        self.blocks = list(blocks)
        self.parent = parent
        self.max_entries = max_entries
        self.uuid = uuid if uuid is not None else hashlib.md5(path.encode()).digest()
        self.creator = creator
        self.timestamp = timestamp
        self.locators = locators
        self.fixed_seed = fixed_seed
        # Overrides for malformed cases: byte patches applied last.
        self.patches = []
        self.truncate_to = None
        self.bat_overrides = {}
        self.parent_uuid = None

    # The layout: footer copy, dynamic header, BAT, locator data, blocks,
    # footer. Returns the file's bytes as a list of (offset, bytes).
    def layout(self):
        if self.kind == 'fixed':
            data = bytearray(self.size)
            for s in range(0, self.size // SECTOR, 7):
                data[s * SECTOR:(s + 1) * SECTOR] = sector_data(self.fixed_seed, s)
            return [(0, bytes(data)),
                    (self.size, footer(self.size, 2, self.uuid, 0xFFFFFFFFFFFFFFFF,
                                       self.timestamp, self.creator))], self.size + 512
        bs = self.block_size
        entries = self.max_entries if self.max_entries is not None else -(-self.size // bs)
        table_off = 512 + 1024
        bat_len = (4 * entries + SECTOR - 1) // SECTOR * SECTOR
        off = table_off + bat_len
        pieces = []
        locs = []
        dtype = 3
        parent_uuid, parent_ts, parent_name = bytes(16), 0, ''
        if self.kind == 'differencing':
            dtype = 4
            p = self.parent
            parent_uuid = self.parent_uuid if self.parent_uuid is not None else p.uuid
            parent_ts = p.timestamp
            parent_name = os.path.basename(p.path)
            for code in self.locators:
                if code == 'W2ru':
                    text = ('.\\' + os.path.relpath(p.path, os.path.dirname(self.path)))
                    data = text.replace('/', '\\').encode('utf-16-le')
                elif code == 'W2ku':
                    data = os.path.abspath(p.path).encode('utf-16-le')
                else:
                    data = ('file://' + os.path.abspath(p.path)).encode()
                space = (len(data) + SECTOR - 1) // SECTOR
                pieces.append((off, data))
                locs.append((code.encode(), space, len(data), off))
                off += space * SECTOR
        bmsize = len(bitmap_bytes([False] * (bs // SECTOR)))
        bat = [UNALLOCATED] * entries
        for blk in self.blocks:
            bat[blk.index] = off // SECTOR
            bits = bitmap_bits(blk.bitmap, bs // SECTOR)
            pieces.append((off, bitmap_bytes(bits)))
            pieces.append((off + bmsize, block_data(blk.seed, bs, blk.zero_every)))
            off += bmsize + bs
        for i, v in self.bat_overrides.items():
            bat[i] = v
        foot = footer(self.size, dtype, self.uuid, 512, self.timestamp, self.creator)
        pieces.insert(0, (0, foot))
        pieces.insert(1, (512, dynhdr(table_off, entries, bs, parent_uuid, parent_ts,
                                      parent_name, locs)))
        pieces.insert(2, (table_off, struct.pack('>%dI' % entries, *bat)))
        pieces.append((off, foot))
        return pieces, off + 512

    def write(self):
        pieces, end = self.layout()
        with open(self.path, 'wb') as f:
            f.truncate(end)
            for off, data in pieces:
                f.seek(off)
                f.write(data)
            for off, data in self.patches:
                f.seek(off if off >= 0 else end + off)
                f.write(data)
            if self.truncate_to is not None:
                f.truncate(self.truncate_to)
        return self

    # What the virtual disk reads as, as a sparse list of (offset, 512 bytes).
    def sectors(self):
        if self.kind == 'fixed':
            return {s * SECTOR: sector_data(self.fixed_seed, s)
                    for s in range(0, self.size // SECTOR, 7)}
        out = self.parent.sectors() if self.kind == 'differencing' else {}
        bs = self.block_size
        for blk in self.blocks:
            bits = bitmap_bits(blk.bitmap, bs // SECTOR)
            for s, on in enumerate(bits):
                voff = blk.index * bs + s * SECTOR
                if not on or voff >= self.size:
                    continue
                if blk.zero_every and s % blk.zero_every == 0:
                    out.pop(voff, None)
                else:
                    out[voff] = sector_data(blk.seed, s)
        return out

    def write_raw(self, path=None):
        path = path or self.path + '.raw'
        with open(path, 'wb') as f:
            f.truncate(self.size)
            for voff, data in sorted(self.sectors().items()):
                f.seek(voff)
                f.write(data)
        return path


# --- the cases -------------------------------------------------------------

def good_cases(d):
    """(name, Disk, extra args) for disks that must expand to their raw."""
    j = lambda n: os.path.join(d, n)
    cases = []
    # Odd block sizes, out-of-order blocks, partial bitmaps over garbage.
    cases.append(('bs4k', Disk(j('bs4k.vhd'), 'dynamic', 1 * MiB, 4096, [
        Block(200, 'full'), Block(3, 'odd'), Block(0, [(1, 2)]), Block(255, 'last'),
        Block(17, 'full', zero_every=2)]), []))
    cases.append(('bs512k', Disk(j('bs512k.vhd'), 'dynamic', 8 * MiB, 512 * 1024, [
        Block(15, 'full'), Block(2, [(0, 1), (100, 300), (1023, 1)]), Block(7, 'none'),
        Block(0, 'odd', zero_every=5)]), []))
    cases.append(('bs16m', Disk(j('bs16m.vhd'), 'dynamic', 64 * MiB, 16 * MiB, [
        Block(3, 'last'), Block(1, [(0, 8), (32760, 8)])]), []))
    # Size not a multiple of the block size; data in the last sector.
    cases.append(('tail', Disk(j('tail.vhd'), 'dynamic', 5 * MiB + 3 * 512, 2 * MiB, [
        Block(2, 'full'), Block(0, [(4, 4)])]), []))
    cases.append(('lastsector', Disk(j('lastsector.vhd'), 'dynamic', 4 * MiB, 2 * MiB, [
        Block(1, 'last')]), []))
    cases.append(('empty_dynamic', Disk(j('empty_dynamic.vhd'), 'dynamic', 3 * MiB, 2 * MiB,
                                        []), []))
    cases.append(('fixed', Disk(j('fixed.vhd'), 'fixed', 2 * MiB + 4096), []))
    # A creator qemu would read the size of from CHS: vhdup takes current size.
    cases.append(('creator_vpc', Disk(j('creator_vpc.vhd'), 'dynamic', 10 * MiB, 2 * MiB, [
        Block(4, 'full')], creator=b'vpc '), []))
    # A differencing chain: base <- mid <- top, each a layer over the last.
    base = Disk(j('chain_base.vhd'), 'dynamic', 12 * MiB, 2 * MiB, [
        Block(5, 'full'), Block(0, 'full'), Block(2, 'odd')])
    mid = Disk(j('chain_mid.vhd'), 'differencing', 12 * MiB, 2 * MiB, [
        Block(2, [(0, 1000)]), Block(3, 'odd', seed='mid3'), Block(0, [(10, 10)], seed='mid0',
                                                                 zero_every=3)], parent=base)
    top = Disk(j('chain_top.vhd'), 'differencing', 12 * MiB, 2 * MiB, [
        Block(0, [(0, 5), (4095, 1)], seed='top0'), Block(5, 'none', seed='top5'),
        Block(3, [(1, 1)], seed='top3')], parent=mid, locators=('W2ru', 'W2ku'))
    cases.append(('chain_base', base, []))
    cases.append(('chain_mid', mid, []))
    cases.append(('chain_top', top, []))
    # Only the absolute W2ku locator; the W2ru one is absent.
    ku = Disk(j('chain_w2ku.vhd'), 'differencing', 12 * MiB, 2 * MiB, [Block(1, 'odd')],
              parent=base, locators=('W2ku',))
    cases.append(('chain_w2ku', ku, []))
    # 1 TiB virtual, a few MiB of data, blocks far apart and out of order.
    big = Disk(j('big1t.vhd'), 'dynamic', TiB, 2 * MiB, [
        Block(524287, 'full'), Block(0, 'full'), Block(262144, [(0, 2048)]), Block(77777, 'odd')])
    cases.append(('big1t', big, []))
    return cases


def bad_cases(d):
    """(name, writer, exit, regex, extra args); the writer makes the file."""
    j = lambda n: os.path.join(d, n)
    out = []

    def dyn(name, **kw):
        return Disk(j(name + '.vhd'), 'dynamic', 8 * MiB, 2 * MiB,
                    [Block(1, 'full'), Block(3, 'odd')], **kw)

    def case(name, make, code, regex, extra=()):
        out.append((name, make, code, regex, list(extra)))

    def bad_cookie():
        disk = Disk(j('bad_cookie.vhd'), 'fixed', 1 * MiB)
        disk.patches = [(-512, b'conectiy')]
        disk.write()
    case('bad_cookie', bad_cookie, 3, r'footer at offset 1048576.*(cookie|not a VHD)')

    def bad_footer_checksum():
        disk = Disk(j('bad_footer_checksum.vhd'), 'fixed', 1 * MiB)
        disk.patches = [(-512 + 64, b'\x00\x00\x00\x01')]
        disk.write()
    case('bad_footer_checksum', bad_footer_checksum, 3, r'footer at offset 1048576.*checksum')

    def both_footers_bad():
        disk = dyn('both_footers_bad')
        disk.patches = [(64, b'\x00\x00\x00\x01'), (-512 + 64, b'\x00\x00\x00\x01')]
        disk.write()
    case('both_footers_bad', both_footers_bad, 3, r'footer at offset [0-9]+: .*checksum')

    def bad_header_checksum():
        disk = dyn('bad_header_checksum')
        disk.patches = [(512 + 36, b'\x00\x00\x00\x01')]
        disk.write()
    case('bad_header_checksum', bad_header_checksum, 3,
         r'dynamic header at offset 512.*checksum')

    def bad_header_cookie():
        disk = dyn('bad_header_cookie')
        disk.patches = [(512, b'cxsparsX')]
        disk.write()
    case('bad_header_cookie', bad_header_cookie, 3, r'dynamic header at offset 512.*cookie')

    def truncated_small():
        with open(j('truncated_small.vhd'), 'wb') as f:
            f.write(footer(8 * MiB, 3, bytes(16), 512)[:300])
    case('truncated_small', truncated_small, 3, r'file size 300 is too small')

    def truncated_mid():
        disk = dyn('truncated_mid')
        disk.truncate_to = 1536 + 512 + 512 + MiB  # in the middle of the first block
        disk.write()
    case('truncated_mid', truncated_mid, 3, r'BAT entry 1 at offset 1540.*past the end')

    def block_size_0():
        disk = dyn('block_size_0')
        disk.write()
        patch_header(disk.path, 32, struct.pack('>I', 0))
    case('block_size_0', block_size_0, 3, r'block size 0 \(byte 544\)')

    def block_size_odd():
        disk = dyn('block_size_not_pow2')
        disk.write()
        patch_header(disk.path, 32, struct.pack('>I', 3 * MiB))
    case('block_size_not_pow2', block_size_odd, 3, r'block size 3145728 \(byte 544\).*power')

    def too_few_entries():
        disk = dyn('too_few_entries')
        disk.write()
        patch_header(disk.path, 28, struct.pack('>I', 2))
    case('too_few_entries', too_few_entries, 3, r'max table entries 2 \(byte 540\)')

    def bat_past_eof():
        disk = dyn('bat_past_eof')
        disk.write()
        patch_header(disk.path, 16, struct.pack('>Q', 1 << 40))
    case('bat_past_eof', bat_past_eof, 3, r'BAT at table offset 1099511627776.*past the end')

    def bat_entry_past_eof():
        disk = dyn('bat_entry_past_eof')
        disk.bat_overrides = {2: 0x100000}
        disk.write()
    case('bat_entry_past_eof', bat_entry_past_eof, 3, r'BAT entry 2 at offset 1544.*past the end')

    def bat_overlap():
        disk = dyn('bat_overlap')
        pieces, _ = disk.layout()
        # Entry 2 points one sector after entry 1's block start.
        disk.bat_overrides = {2: struct.unpack('>I', pieces[2][1][4:8])[0] + 1}
        disk.write()
    case('bat_overlap', bat_overlap, 3, r'BAT entry 1 .*overlaps BAT entry 2')

    def bat_over_header():
        disk = dyn('bat_over_header')
        disk.bat_overrides = {0: 1}
        disk.write()
    case('bat_over_header', bat_over_header, 3, r'dynamic header.*overlaps|overlaps.*dynamic header')

    def empty():
        open(j('empty.vhd'), 'wb').close()
    case('empty', empty, 3, r'empty')

    def random_junk():
        r = random.Random(7)
        with open(j('random.vhd'), 'wb') as f:
            f.write(bytes(r.getrandbits(8) for _ in range(64 * 1024)))
    case('random', random_junk, 3, r'not a VHD')

    def unknown_type():
        disk = dyn('unknown_type')
        disk.write()
        patch_footers(disk.path, 60, struct.pack('>I', 7))
    case('unknown_type', unknown_type, 3, r'unknown disk type 7 \(byte')

    def size_zero():
        disk = dyn('size_zero')
        disk.write()
        patch_footers(disk.path, 48, struct.pack('>Q', 0))
    case('size_zero', size_zero, 3, r'current size 0 \(byte')

    def too_big():
        disk = dyn('too_big')
        disk.write()
        patch_footers(disk.path, 48, struct.pack('>Q', 9 * TiB))
    case('too_big', too_big, 3, r'exceeds the page blob limit')

    def hostile_entries():
        disk = dyn('hostile_entries')
        disk.write()
        patch_header(disk.path, 28, struct.pack('>I', 1 << 31))
    case('hostile_entries', hostile_entries, 3, r'2147483648 entries.*past the end')

    def missing_parent():
        base = Disk(j('gone_parent.vhd'), 'dynamic', 4 * MiB, 2 * MiB, [Block(0)])
        child = Disk(j('missing_parent.vhd'), 'differencing', 4 * MiB, 2 * MiB, [Block(1)],
                     parent=base)
        child.write()  # the parent itself is never written
    case('missing_parent', missing_parent, 3, r"parent 'gone_parent.vhd' not found")

    def uuid_mismatch():
        base = Disk(j('mm_parent.vhd'), 'dynamic', 4 * MiB, 2 * MiB, [Block(0)]).write()
        child = Disk(j('uuid_mismatch.vhd'), 'differencing', 4 * MiB, 2 * MiB, [Block(1)],
                     parent=base)
        child.parent_uuid = b'\x99' * 16
        child.write()
    case('uuid_mismatch', uuid_mismatch, 3,
         r'(99999999-9999.*does not match|does not match.*99999999-9999)')

    def parent_size_mismatch():
        base = Disk(j('ps_parent.vhd'), 'dynamic', 6 * MiB, 2 * MiB, [Block(0)]).write()
        child = Disk(j('parent_size.vhd'), 'differencing', 4 * MiB, 2 * MiB, [Block(1)],
                     parent=base)
        child.write()
    case('parent_size', parent_size_mismatch, 3, r'current size [0-9]+ differs from (its parent|the child)')

    def diff_no_locator():
        base = Disk(j('nl_parent.vhd'), 'dynamic', 4 * MiB, 2 * MiB, [Block(0)]).write()
        Disk(j('no_locator.vhd'), 'differencing', 4 * MiB, 2 * MiB, [Block(1)], parent=base,
             locators=()).write()
    case('no_locator', diff_no_locator, 3, r'no usable parent locator')
    return out


def patch_header(path, field_off, data):
    """Patches a dynamic header field at 512 + field_off and fixes the
    header's checksum, so only the field itself is wrong."""
    with open(path, 'r+b') as f:
        f.seek(512)
        h = bytearray(f.read(1024))
        h[field_off:field_off + len(data)] = data
        struct.pack_into('>I', h, 36, checksum(h, 36))
        f.seek(512)
        f.write(h)


def patch_footers(path, field_off, data):
    """Patches a field in both footers (end and copy) with valid checksums."""
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        for off in (0, size - 512):
            f.seek(off)
            b = bytearray(f.read(512))
            b[field_off:field_off + len(data)] = data
            struct.pack_into('>I', b, 64, checksum(b, 64))
            f.seek(off)
            f.write(b)


def write_cases(d):
    os.makedirs(d, exist_ok=True)
    rows = []
    for name, disk, extra in good_cases(d):
        disk.write()
        disk.write_raw()
        rows.append((name, 'good', disk.path, 0, '', extra))
    # The end footer damaged, the copy at 0 intact: recovered, with a warning.
    rec = Disk(os.path.join(d, 'recovered.vhd'), 'dynamic', 6 * MiB, 2 * MiB,
               [Block(2, 'full'), Block(0, 'odd')])
    rec.patches = [(-512, b'garbage!')]
    rec.write()
    rec.write_raw()
    rows.append(('recovered', 'warn', rec.path, 0, r'recovered from the copy at offset 0', []))
    for name, make, code, regex, extra in bad_cases(d):
        make()
        path = os.path.join(d, name + '.vhd')
        rows.append((name, 'bad', path, code, regex, extra))
    with open(os.path.join(d, 'cases.tsv'), 'w') as f:
        for name, kind, path, code, regex, extra in rows:
            f.write('\t'.join([name, kind, path, str(code), regex, ' '.join(extra)]) + '\n')
    return rows


def write_big(path, vsize, data_mib, block_size=2 * MiB):
    """A dynamic disk of vsize bytes with data_mib MiB in full blocks spread
    evenly across it, in reverse file order."""
    nblocks = -(-vsize // block_size)
    want = max(1, data_mib * MiB // block_size)
    step = max(1, nblocks // want)
    idx = list(range(0, nblocks, step))[:want]
    disk = Disk(path, 'dynamic', vsize, block_size,
                [Block(i, 'full', seed='big%d' % (i % 64)) for i in reversed(idx)])
    disk.write()
    return disk


# --- comparing sparse files ----------------------------------------------

def data_regions(fd, size):
    """(start, end) runs that may hold data, from SEEK_DATA/SEEK_HOLE."""
    out, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, min(end, size)))
        pos = end
    return out


def sparse_cmp(a, b):
    sa, sb = os.path.getsize(a), os.path.getsize(b)
    if sa != sb:
        print('cmp: %s is %d bytes, %s is %d' % (a, sa, b, sb))
        return 1
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        regions = sorted(data_regions(fa.fileno(), sa) + data_regions(fb.fileno(), sb))
        pos = 0
        for start, end in regions:
            start = max(start, pos)
            while start < end:
                n = min(end - start, 4 * MiB)
                fa.seek(start)
                fb.seek(start)
                x, y = fa.read(n), fb.read(n)
                if x != y:
                    i = next(k for k in range(n) if x[k] != y[k])
                    print('cmp: %s and %s differ at byte %d' % (a, b, start + i))
                    return 1
                start += n
            pos = max(pos, end)
    return 0


def read_footer(path):
    with open(path, 'rb') as f:
        f.seek(-512, os.SEEK_END)
        b = f.read(512)
    (features, version, data_offset, ts, creator, cver, host, orig, cur, cyl, heads, spt,
     dtype, cks) = struct.unpack_from('>IIQI4sI4sQQHBBII', b, 8)
    return {
        'cookie': b[0:8].decode('latin-1'), 'features': features, 'version': version,
        'data_offset': data_offset, 'timestamp': ts, 'creator_app': creator.decode('latin-1'),
        'creator_version': cver, 'creator_os': host.decode('latin-1'), 'original_size': orig,
        'current_size': cur, 'cylinders': cyl, 'heads': heads, 'sectors_per_track': spt,
        'chs_expected': list(chs(cur)), 'disk_type': dtype, 'checksum': cks,
        'checksum_ok': cks == checksum(b, 64), 'uuid': b[68:84].hex(), 'saved_state': b[84],
        'file_size': os.path.getsize(path),
    }


def disk_from_spec(spec):
    parent = disk_from_spec(spec['parent']) if 'parent' in spec else None
    blocks = [Block(b['index'], b.get('bitmap', 'full'), b.get('seed'), b.get('zero_every', 0))
              for b in spec.get('blocks', [])]
    kw = {}
    if 'creator' in spec:
        kw['creator'] = spec['creator'].encode('latin-1')
    if 'locators' in spec:
        kw['locators'] = tuple(spec['locators'])
    if 'max_entries' in spec:
        kw['max_entries'] = spec['max_entries']
    disk = Disk(spec['path'], spec['kind'], spec['size'], spec.get('block_size', 2 * MiB),
                blocks, parent=parent, **kw)
    disk.write()
    disk.write_raw()
    return disk


def main(argv):
    if len(argv) == 3 and argv[1] == 'spec':
        with open(argv[2]) as f:
            disk_from_spec(json.load(f))
        return 0
    if len(argv) >= 3 and argv[1] == 'cases':
        for row in write_cases(argv[2]):
            pass
        return 0
    if len(argv) >= 5 and argv[1] == 'big':
        bs = 2 * MiB
        if len(argv) >= 7 and argv[5] == '--block-size':
            bs = int(argv[6])
        write_big(argv[2], int(argv[3]), int(argv[4]), bs)
        return 0
    if len(argv) == 4 and argv[1] == 'cmp':
        return sparse_cmp(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == 'footer':
        print(json.dumps(read_footer(argv[2])))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))

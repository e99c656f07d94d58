#!/usr/bin/env python3
"""Hand-built VHDX files for vhdup's tests, written from [MS-VHDX].

Makes what qemu-img cannot: differencing disks (PARTIALLY_PRESENT blocks
with sector bitmaps, parent locators), UNMAPPED / UNDEFINED / ZERO blocks,
4096-byte logical sectors, both header orders, torn headers and region
tables, and malformed files. Next to each good disk it writes PATH.raw, the
bytes the virtual disk must read as. Python 3 standard library only.

  mkvhdx.py cases OUTDIR   every case, plus OUTDIR/cases.tsv, the table the
                           tests read: name kind file expect_exit regex
                           extra_args (kind: good = expand must equal
                           file.raw; warn = the same and stderr matches
                           regex; bad = fails with expect_exit, stderr
                           matching regex; good rows have regex ".")
"""
import os
import random
import struct
import sys
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkvhd  # noqa: E402  (the VHD footer, for a VHD parent)

KiB = 1 << 10
MiB = 1 << 20
TiB = 1 << 40

# 2.2.3.1 regions, 2.6.2 metadata items, 2.6.2.6 locator type.
BAT = '2DC27766-F623-4200-9D64-115E9BFD4A08'
METADATA = '8B7CA206-4790-4B9A-B8FE-575F050F886E'
FILE_PARAMS = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B'
VSIZE = '2FA54224-CD1B-4876-B211-5DBED83BF4B8'
PAGE83 = 'BECA12AB-B2E6-4523-93EF-C309E000C746'
LSS = '8141BF1D-A96F-4709-BA47-F233A8FAAB5F'
PSS = 'CDA348C7-445D-4471-9CC9-E9885251C556'
LOCATOR = 'A8D35F2D-B30B-454D-ABF7-D3D84834AB0C'
LOCATOR_TYPE = 'B04AEFB7-D19E-4A81-B789-25B8E9445913'

# 2.5.1.1 payload states, 2.5.1.2 sector bitmap states.
NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, FULL, PARTIAL = 0, 1, 2, 3, 6, 7
SB_PRESENT = 6


def crc32c(data):
    """CRC-32C (Castagnoli), reflected polynomial 0x82F63B78."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def crc32c_fast(data):
    """The same, table-driven (the 64 KiB region tables)."""
    crc = 0xFFFFFFFF
    t = _TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_TABLE = _table()
assert crc32c(b'123456789') == 0xE3069283


def guid(text):
    return uuid.UUID(text).bytes_le


def guid_text(b):
    return '{' + str(uuid.UUID(bytes_le=bytes(b))).upper() + '}'


def utf16(s):
    return s.encode('utf-16-le')


def header(seq, data_write, log_guid=bytes(16), log_off=MiB, log_len=MiB, version=1,
           bad_crc=False):
    """2.2.2: 4 KiB checksummed, in a 64 KiB slot."""
    b = bytearray(4 * KiB)
    b[0:4] = b'head'
    struct.pack_into('<Q', b, 8, seq)
    b[16:32] = guid('11111111-2222-3333-4444-%012d' % seq)
    b[32:48] = data_write
    b[48:64] = log_guid
    struct.pack_into('<HHIQ', b, 64, 0, version, log_len, log_off)
    struct.pack_into('<I', b, 4, crc32c_fast(b) ^ (0xBAD if bad_crc else 0))
    return bytes(b)


def region_table(entries, bad_crc=False, count=None):
    """2.2.3: entries (guid text, offset, length, required)."""
    b = bytearray(64 * KiB)
    b[0:4] = b'regi'
    struct.pack_into('<I', b, 8, len(entries) if count is None else count)
    for i, (g, off, length, req) in enumerate(entries):
        o = 16 + 32 * i
        b[o:o + 16] = guid(g)
        struct.pack_into('<QII', b, o + 16, off, length, 1 if req else 0)
    struct.pack_into('<I', b, 4, crc32c_fast(b) ^ (0xBAD if bad_crc else 0))
    return bytes(b)


def metadata_table(items):
    """2.6.1: items (guid text, offset, data, flags); returns (table, payloads)."""
    b = bytearray(64 * KiB)
    b[0:8] = b'metadata'
    struct.pack_into('<H', b, 10, len(items))
    for i, (g, off, data, flags) in enumerate(items):
        o = 32 + 32 * i
        b[o:o + 16] = guid(g)
        struct.pack_into('<III', b, o + 16, off, len(data), flags)
    return bytes(b)


def locator(pairs):
    """2.6.2.6: the VHDX locator type and UTF-16LE key/value pairs."""
    head = bytearray(20 + 12 * len(pairs))
    head[0:16] = guid(LOCATOR_TYPE)
    struct.pack_into('<H', head, 18, len(pairs))
    body = bytearray()
    for i, (k, v) in enumerate(pairs):
        kb, vb = utf16(k), utf16(v)
        ko = len(head) + len(body)
        body += kb
        vo = len(head) + len(body)
        body += vb
        struct.pack_into('<IIHH', head, 20 + 12 * i, ko, vo, len(kb), len(vb))
    return bytes(head + body)


SMALL_DATA = False  # the fuzz corpus: 64 bytes of data per block, then zeros


def pattern(seed, n):
    r = random.Random(seed)
    head = bytes(r.getrandbits(8) for _ in range(64))
    if SMALL_DATA:
        return head + bytes(n - 64) if n >= 64 else head[:n]
    return head * (n // 64)


LOG_GUID = '10610610-0000-4000-8000-00000000000A'


def log_entry(seq, descs, tail=0, bad_crc=False):
    """2.3.1: a log entry: header, descriptors, data sectors. descs:
    ('data', file_offset, 4096 bytes) or ('zero', file_offset, length)."""
    ndesc_sec = -(-(64 + 32 * len(descs)) // 4096)
    datas = [x for x in descs if x[0] == 'data']
    b = bytearray(4096 * (ndesc_sec + len(datas)))
    b[0:4] = b'loge'
    struct.pack_into('<IIQII', b, 8, len(b), tail, seq, len(descs), 0)
    b[32:48] = guid(LOG_GUID)
    struct.pack_into('<QQ', b, 48, 0, len(b))
    k = 0
    for i, dsc in enumerate(descs):
        o = 64 + 32 * i
        if dsc[0] == 'zero':
            b[o:o + 4] = b'zero'
            struct.pack_into('<QQQ', b, o + 8, dsc[2], dsc[1], seq)
        else:
            data = dsc[2]
            b[o:o + 4] = b'desc'
            b[o + 4:o + 8] = data[4092:4096]
            b[o + 8:o + 16] = data[0:8]
            struct.pack_into('<QQ', b, o + 16, dsc[1], seq)
            so = 4096 * (ndesc_sec + k)
            b[so:so + 4] = b'data'
            struct.pack_into('<I', b, so + 4, seq >> 32)
            b[so + 8:so + 4092] = data[8:4092]
            struct.pack_into('<I', b, so + 4092, seq & 0xFFFFFFFF)
            k += 1
    struct.pack_into('<I', b, 4, crc32c_fast(b) ^ (0xBAD if bad_crc else 0))
    return bytes(b)


class Vhdx:
    """One VHDX. blocks: {index: (state, seed, ranges)}; ranges (for
    PARTIAL): [(first_sector, count)] of the block's logical sectors."""

    def __init__(self, path, vsize, block_size=MiB, lss=512, pss=512, blocks=None,
                 parent=None, locator_pairs=None, fixed=False):
        self.path, self.vsize, self.bs, self.lss, self.pss = path, vsize, block_size, lss, pss
        self.blocks = blocks or {}
        self.parent = parent
        self.locator_pairs = locator_pairs
        self.fixed = fixed
        h = zlib.crc32(os.path.basename(path).encode())
        self.data_write = guid('DA7A0000-0000-4000-8000-%012x' % h)
        self.page83 = guid('0E0E0E0E-0000-4000-8000-%012x' % h)
        self.bat_len = None            # the BAT region's length, if not the needed one
        self.seqs = (5, 6)            # header 1, header 2 sequence numbers
        self.bad_header = ()          # headers (1, 2) with a bad CRC
        self.header_kw = {}           # extra header() arguments for both
        self.stale_log_guid = False   # the older header has a LogGuid set
        self.bad_region = ()          # region tables (1, 2) with a bad CRC
        self.region_edit = None       # f(entries) -> entries
        self.meta_edit = None         # f(items) -> items
        self.bat_edit = None          # f(bat dict index -> entry)
        self.params_flags = None
        self.patches = []             # (offset, bytes) written last
        self.min_size = 4 * MiB        # the file is at least this long
        # A log to replay (2.3), over a BAT left as it was before it:
        # 'bat' (one entry rewriting the BAT's first sector), 'torn' (that,
        # then an entry with a bad CRC), 'zero_then_bat' (a zero descriptor
        # then the sector), 'data' (the sector, then writes of payload data
        # in blocks 0 and 2, one over another, and zeros over part of block
        # 2: see log()), 'empty' (the LogGuid set, no entries).
        self.log_mode = None
        self.block_off = {}           # block index -> file offset (write())
        self.log_writes = []          # (virtual offset, bytes) the log leaves

    def chunk_ratio(self):
        return (1 << 23) * self.lss // self.bs

    def layout(self):
        cr = self.chunk_ratio()
        nblocks = -(-self.vsize // self.bs)
        nchunks = -(-nblocks // cr)
        has_parent = self.parent is not None or self.locator_pairs is not None
        total = nchunks * (cr + 1) if has_parent else nblocks + max(nblocks - 1, 0) // cr
        bat_len = self.bat_len or max(-(-total * 8 // MiB), 1) * MiB
        return cr, nblocks, nchunks, has_parent, total, bat_len

    def write(self):
        cr, nblocks, nchunks, has_parent, total, bat_len = self.layout()
        bat_off, meta_off = 3 * MiB, 2 * MiB
        nxt = bat_off + bat_len
        bat, pieces, bitmaps = {}, [], {}
        for i in sorted(self.blocks):
            state, seed, ranges = (self.blocks[i] + (None, None))[:3]
            off = 0
            if state in (FULL, PARTIAL):
                off = nxt
                self.block_off[i] = off
                nxt += self.bs
                pieces.append((off, pattern(seed, min(self.bs, self.vsize - i * self.bs))))
            if state == PARTIAL:
                c = i // cr
                if c not in bitmaps:
                    bitmaps[c] = (nxt, bytearray(MiB))
                    nxt += MiB
                bm = bitmaps[c][1]
                base = (i % cr) * (self.bs // self.lss)
                for first, count in ranges:
                    for s in range(first, first + count):
                        bm[(base + s) // 8] |= 1 << ((base + s) % 8)
            bat[i + i // cr] = state | (off // MiB) << 20
        for c, (off, bm) in bitmaps.items():
            bat[c * (cr + 1) + cr] = SB_PRESENT | (off // MiB) << 20
            pieces.append((off, bytes(bm)))
        if self.bat_edit:
            self.bat_edit(bat)
        batbuf = bytearray(bat_len)
        for j, e in bat.items():
            if 0 <= j < bat_len // 8:
                struct.pack_into('<Q', batbuf, 8 * j, e)
        if self.log_mode:
            pieces.append((MiB, self.log(bat_off, bytes(batbuf[:4096]), nxt)))
            batbuf[:4096] = bytes(4096)  # as it was before the log's writes
            self.header_kw = dict(self.header_kw, log_guid=guid(LOG_GUID))
        pieces.append((bat_off, bytes(batbuf)))
        pieces += self.metadata(meta_off, has_parent)
        regions = [(BAT, bat_off, bat_len, True), (METADATA, meta_off, MiB, True)]
        if self.region_edit:
            regions = self.region_edit(regions)
        for k, off in ((1, 192 * KiB), (2, 256 * KiB)):
            pieces.append((off, region_table(regions, bad_crc=k in self.bad_region)))
        for k, off in ((1, 64 * KiB), (2, 128 * KiB)):
            older = self.seqs[k - 1] < self.seqs[2 - k]
            lg = guid('10610610-0000-4000-8000-000000000001') \
                if self.stale_log_guid and older else bytes(16)
            kw = dict({'log_guid': lg}, **self.header_kw)
            pieces.append((off, header(self.seqs[k - 1], self.data_write,
                                       bad_crc=k in self.bad_header, **kw)))
        ident = b'vhdxfile' + utf16('mkvhdx.py')
        pieces.append((0, ident))
        with open(self.path, 'wb') as f:
            f.truncate(max(nxt, self.min_size))
            for off, data in pieces + self.patches:
                f.seek(off)
                f.write(data)

    def log(self, bat_off, bat_sector, end):
        m = self.log_mode
        if m == 'empty':
            return bytes(4096)
        if m == 'data':
            # Payload writes of blocks 0 and 2 (both FULL): two adjacent
            # sectors, a later entry writing over the second, zeros, and
            # the last sector of block 2. Replayed, the disk holds what
            # log_writes says (raw() applies it).
            b0, b2 = self.block_off[0], self.block_off[2]
            p1, p2, p3, p4 = (pattern('log%d' % k, 4096) for k in range(4))
            self.log_writes = [(4096, p1), (8192, p3), (2 * self.bs + 65536, bytes(8192)),
                               (3 * self.bs - 4096, p4)]
            return log_entry(100, [('data', bat_off, bat_sector), ('data', b0 + 4096, p1),
                                   ('data', b0 + 8192, p2)]) + \
                log_entry(101, [('data', b0 + 8192, p3), ('zero', b2 + 65536, 8192),
                                ('data', b2 + self.bs - 4096, p4)])
        if m == 'zero_then_bat':
            return log_entry(100, [('zero', bat_off, 4096)]) + \
                log_entry(101, [('data', bat_off, bat_sector)])
        first = log_entry(100, [('data', bat_off, bat_sector)])
        if m == 'torn':
            return first + log_entry(101, [('zero', bat_off, 4096)], bad_crc=True)
        return first

    def metadata(self, meta_off, has_parent):
        flags = self.params_flags
        if flags is None:
            flags = (1 if self.fixed else 0) | (2 if has_parent else 0)
        items = [
            (FILE_PARAMS, struct.pack('<II', self.bs, flags), 4),
            (VSIZE, struct.pack('<Q', self.vsize), 6),
            (PAGE83, self.page83, 6),
            (LSS, struct.pack('<I', self.lss), 6),
            (PSS, struct.pack('<I', self.pss), 4),
        ]
        if self.locator_pairs is not None:
            items.append((LOCATOR, locator(self.locator_pairs), 4))
        placed, off = [], 64 * KiB
        for g, data, fl in items:
            placed.append((g, off, data, fl))
            off += -(-len(data) // 4096) * 4096
        if self.meta_edit:
            placed = self.meta_edit(placed)
        out = [(meta_off, metadata_table(placed))]
        out += [(meta_off + o, d) for g, o, d, fl in placed if o >= 64 * KiB]
        return out

    def raw(self):
        """The virtual disk's bytes."""
        if self.parent is not None:
            r = bytearray(self.parent.raw())
        else:
            r = bytearray(self.vsize)
        for i, b in self.blocks.items():
            state, seed, ranges = (b + (None, None))[:3]
            lo = i * self.bs
            n = min(self.bs, self.vsize - lo)
            if state == FULL:
                r[lo:lo + n] = pattern(seed, n)
            elif state in (ZERO, UNMAPPED):
                r[lo:lo + n] = bytes(n)
            elif state == PARTIAL:
                data = pattern(seed, n)
                for first, count in ranges:
                    a, z = first * self.lss, min((first + count) * self.lss, n)
                    r[lo + a:lo + z] = data[a:z]
        for off, data in self.log_writes:
            r[off:off + len(data)] = data
        return bytes(r)

    def write_raw(self):
        with open(self.path + '.raw', 'wb') as f:
            f.write(self.raw())


class VhdParent:
    """A fixed VHD as a VHDX's parent: raw data and a footer."""

    def __init__(self, path, vsize, seed):
        self.path, self.vsize, self.seed = path, vsize, seed
        self.uuid = bytes(range(0x40, 0x50))

    def raw(self):
        return pattern(self.seed, self.vsize)

    def write(self):
        with open(self.path, 'wb') as f:
            f.write(self.raw())
            f.write(mkvhd.footer(self.vsize, 2, self.uuid, 2**64 - 1, creator=b'win '))


def good_cases(d):
    p = lambda n: os.path.join(d, n)  # noqa: E731
    out = []
    # Every payload state of a dynamic disk; the size not a whole MiB.
    dyn = Vhdx(p('states.vhdx'), 11 * MiB + 3 * 512, blocks={
        0: (FULL, 1), 2: (ZERO,), 3: (UNMAPPED,), 4: (UNDEFINED,), 5: (NOT_PRESENT,),
        7: (FULL, 2), 11: (FULL, 3)})
    out.append(('states', dyn, []))
    # 4096-byte logical sectors: chunk ratio 32768.
    out.append(('lss4k', Vhdx(p('lss4k.vhdx'), 9 * MiB, lss=4096, pss=4096,
                              blocks={1: (FULL, 4), 8: (FULL, 5)}), []))
    # Header 1 current (higher sequence), header 2 older with a LogGuid set:
    # only the current header's log counts.
    h1 = Vhdx(p('hdr1.vhdx'), 4 * MiB, blocks={1: (FULL, 6)})
    h1.seqs, h1.stale_log_guid = (9, 3), True
    out.append(('header1_current', h1, []))
    h2 = Vhdx(p('hdr2.vhdx'), 4 * MiB, blocks={2: (FULL, 7)})
    h2.seqs, h2.stale_log_guid = (3, 9), True
    out.append(('header2_current', h2, []))
    # Block size 256 MiB, a small disk (one short block).
    out.append(('bs256m', Vhdx(p('bs256m.vhdx'), 3 * MiB, block_size=256 * MiB,
                               blocks={0: (FULL, 8)}), []))
    # Fixed: leave-allocated, every block present.
    out.append(('fixed', Vhdx(p('fixed.vhdx'), 4 * MiB, fixed=True,
                              blocks={i: (FULL, 10 + i) for i in range(4)}), []))
    # Differencing on a VHDX parent, found by relative_path: partially
    # present blocks (islands, runs, a block's last sector), full, zero,
    # unmapped and not-present blocks.
    base = Vhdx(p('base.vhdx'), 8 * MiB, blocks={i: (FULL, 20 + i) for i in range(8)})
    child = Vhdx(p('child.vhdx'), 8 * MiB, parent=base, blocks={
        0: (PARTIAL, 30, [(0, 1), (5, 3), (100, 900)]),
        1: (FULL, 31), 2: (ZERO,), 3: (UNMAPPED,),
        5: (PARTIAL, 32, [(2047, 1)]), 6: (PARTIAL, 33, [(0, 2048)])},
        locator_pairs=[('parent_linkage', guid_text(base.data_write)),
                       ('relative_path', '.\\base.vhdx'),
                       ('absolute_win32_path', 'C:\\nowhere\\base.vhdx')])
    out.append(('diff', child, []))
    # Found only through --parent (the locator's paths are Windows').
    child2 = Vhdx(p('child2.vhdx'), 8 * MiB, parent=base, blocks={
        4: (PARTIAL, 34, [(8, 8)])},
        locator_pairs=[('parent_linkage', guid_text(base.data_write)),
                       ('volume_path', '\\\\?\\Volume{0}\\x\\base.vhdx'),
                       ('absolute_win32_path', 'D:\\x\\base.vhdx')])
    out.append(('diff_override', child2, ['--parent', base.path]))
    # Found through absolute_win32_path alone (the full path, with
    # backslashes, resolves here too).
    child5 = Vhdx(p('child5.vhdx'), 8 * MiB, parent=base, blocks={
        3: (PARTIAL, 35, [(0, 4)])},
        locator_pairs=[('parent_linkage', guid_text(base.data_write)),
                       ('absolute_win32_path', base.path.replace('/', '\\'))])
    out.append(('diff_absolute', child5, []))
    # Differencing on a fixed VHD parent (512-byte sectors, as VHDs have).
    vp = VhdParent(p('vparent.vhd'), 6 * MiB, 40)
    child3 = Vhdx(p('child3.vhdx'), 6 * MiB, parent=vp, blocks={
        1: (PARTIAL, 41, [(1, 1), (1000, 48)]), 4: (FULL, 42)},
        locator_pairs=[('parent_linkage', guid_text(vp.uuid)),
                       ('relative_path', 'vparent.vhd')])
    out.append(('diff_vhd_parent', child3, []))
    # A three-layer chain: child4 -> child -> base.
    child4 = Vhdx(p('child4.vhdx'), 8 * MiB, parent=child, blocks={
        0: (PARTIAL, 50, [(1, 1)]), 7: (PARTIAL, 51, [(100, 10)])},
        locator_pairs=[('parent_linkage', guid_text(child.data_write)),
                       ('relative_path', 'child.vhdx')])
    out.append(('diff_chain3', child4, []))
    for mode in ('bat', 'torn', 'zero_then_bat', 'data'):
        v = Vhdx(p('log_%s.vhdx' % mode), 6 * MiB, blocks={0: (FULL, 90), 2: (FULL, 91),
                                                           5: (ZERO,)})
        v.log_mode = mode
        out.append(('log_' + mode, v, []))
    return out


def warn_cases(d):
    p = lambda n: os.path.join(d, n)  # noqa: E731
    out = []
    t = Vhdx(p('torn_header.vhdx'), 4 * MiB, blocks={0: (FULL, 60)})
    t.seqs, t.bad_header = (1, 2), (2,)
    out.append(('torn_header', t, r'VHDX header 2 at offset 131072 is not valid .*checksum'))
    r = Vhdx(p('torn_region.vhdx'), 4 * MiB, blocks={3: (FULL, 61)})
    r.bad_region = (1,)
    out.append(('torn_region', r, r'region table at offset 196608 is not valid.*copy'))
    return out


def bad_cases(d):
    """(name, disk, exit, regex, extra args)"""
    p = lambda n: os.path.join(d, n + '.vhdx')  # noqa: E731
    cases = []

    def case(name, regex, code=3, extra=(), vsize=4 * MiB, **kw):
        v = Vhdx(p(name), vsize, blocks=kw.pop('blocks', {0: (FULL, 70)}), **kw)
        cases.append((name, v, code, regex, list(extra)))
        return v

    case('bad_ident', r"identifier at offset 0 is not 'vhdxfile'",
         extra=['--format', 'vhdx']).patches = [(0, b'vhdxfilE')]
    case('both_headers_bad', r'no valid VHDX header.*checksum').bad_header = (1, 2)
    case('header_version', r'version \(byte 66\) is 2').header_kw = {'version': 2}
    case('header_log_unaligned', r'log offset .* not a multiple of 1 MiB').header_kw = \
        {'log_off': MiB + 4096}
    case('both_regions_bad', r'region table at offset 196608: checksum.*copy at offset 262144'
         ).bad_region = (1, 2)
    case('region_overlap', r'overlaps entry 0').region_edit = \
        lambda e: [e[0], (METADATA, e[0][1] + MiB // 2 * 2 - MiB, MiB, True)]
    v = case('region_duplicate', r'repeats the GUID of entry 0')
    v.region_edit, v.min_size = lambda e: e + [(BAT, 16 * MiB, MiB, True)], 32 * MiB
    v = case('region_unknown_required', r'unknown region .* required')
    v.region_edit = lambda e: e + [('01234567-89AB-CDEF-0123-456789ABCDEF', 24 * MiB, MiB, True)]
    v.min_size = 32 * MiB
    case('region_beyond_file', r'runs past the end of the file').region_edit = \
        lambda e: [e[0], (METADATA, 1024 * MiB, MiB, True)]
    case('region_unaligned', r'not a multiple of 1 MiB').region_edit = \
        lambda e: [e[0], (METADATA, 2 * MiB + 4096, MiB, True)]
    case('no_metadata_region', r'no metadata region').region_edit = lambda e: [e[0]]
    case('region_count', r'entry count 5000 \(byte 8\) exceeds 2047').patches = [
        (192 * KiB, region_table([], count=5000)), (256 * KiB, region_table([], count=5000))]
    case('meta_signature', r"metadata table at offset 2097152: signature .* 'metadata'"
         ).patches = [(2 * MiB, b'metadatX')]
    case('meta_unknown_required', r'unknown metadata item .* required').meta_edit = \
        lambda it: it + [('FEDCBA98-7654-3210-FEDC-BA9876543210', 600 * KiB, b'x' * 8, 4)]
    case('meta_missing_vsize', r'required virtual disk size item .* missing').meta_edit = \
        lambda it: [x for x in it if x[0] != VSIZE]
    case('meta_overlap', r'overlaps entry').meta_edit = \
        lambda it: it + [('FEDCBA98-7654-3210-FEDC-BA9876543210', it[0][1], b'x' * 8, 0)]
    case('meta_outside', r'is not between the table').meta_edit = \
        lambda it: [(g, o if g != PAGE83 else 2 * MiB, dd, fl) for g, o, dd, fl in it]
    case('meta_duplicate', r'repeats the item of entry').meta_edit = \
        lambda it: it + [(it[1][0], 700 * KiB, it[1][2], it[1][3])]
    case('block_size_3m', r'block size.*3145728 is not a power of two', block_size=3 * MiB,
         blocks={})
    case('block_size_512m', r'block size.*536870912 is not a power of two from 1 MiB to 256 MiB',
         block_size=512 * MiB, blocks={})
    case('block_size_512k', r'block size.*524288 is not', block_size=512 * KiB, blocks={})
    case('vsize_not_sector', r'virtual disk size.* is not a multiple of the logical sector size',
         vsize=4 * MiB + 512, lss=4096)
    case('lss_1024', r'logical sector size.*1024 is neither 512 nor 4096', lss=1024)
    case('vsize_zero', r'virtual disk size.*0 is zero', vsize=0, blocks={})
    case('vsize_64t', r'exceeds the page blob limit', code=3, vsize=64 * TiB, blocks={}
         ).bat_len = MiB
    # A BAT region of 1 MiB for a disk that needs 8 Mi entries: refused
    # before any allocation ("chunk ratio" worth of entries overflow it).
    big = case('bat_too_small', r'holds 131072 entries.*needs', vsize=8 * TiB - 1024 * MiB,
               blocks={})
    big.bat_len = MiB
    case('bat_beyond_file', r'BAT entry 2 at offset .*past the end of the file').bat_edit = \
        lambda b: b.__setitem__(2, FULL | (4000 << 20))
    case('bat_in_header', r'BAT entry 1 .*inside the header section').bat_edit = \
        lambda b: b.__setitem__(1, FULL)
    case('bat_overlap', r'payload block of BAT entry 0 .* overlaps payload block of BAT entry 3',
         blocks={0: (FULL, 71)}).bat_edit = lambda b: b.__setitem__(3, b[0])
    case('bat_on_metadata', r'payload block of BAT entry 1 .* overlaps the metadata region'
         ).bat_edit = lambda b: b.__setitem__(1, FULL | (2 << 20))
    case('bat_reserved_state', r'payload state 4 is reserved').bat_edit = \
        lambda b: b.__setitem__(2, 4)
    case('partial_without_parent', r'PARTIALLY_PRESENT in a disk without a parent',
         blocks={0: (PARTIAL, 72, [(0, 1)])}).params_flags = 0
    case('has_parent_no_locator', r'HasParent but there is no parent locator item'
         ).params_flags = 2
    case('dirty_log', r'log at offset 1048576: no valid sequence of entries for LogGuid'
         ).log_mode = 'empty'
    case('log_elsewhere', r'no valid sequence').header_kw = \
        {'log_guid': guid('10610610-0000-4000-8000-000000000002')}
    case('log_overlaps_bat', r'log .* overlaps the BAT region').header_kw = \
        {'log_off': 3 * MiB}
    # The parent base.vhdx is good_cases'; same folder.
    case('parent_mismatch', r'DataWriteGuid .* is not the parent_linkage',
         vsize=8 * MiB, blocks={}, locator_pairs=[
             ('parent_linkage', '{00000000-0000-0000-0000-000000000000}'),
             ('relative_path', 'base.vhdx')])
    case('parent_missing', r'parent .* not found: tried', vsize=8 * MiB, blocks={},
         locator_pairs=[('parent_linkage', '{00000000-0000-0000-0000-000000000000}'),
                        ('relative_path', 'nope.vhdx')])
    case('locator_no_linkage', r'no parent_linkage key', vsize=8 * MiB, blocks={},
         locator_pairs=[('relative_path', 'base.vhdx')])
    short = case('truncated', r'too small for a VHDX', extra=['--format', 'vhdx'])
    short.truncate_to = 512 * KiB
    return cases


def write_cases(d):
    os.makedirs(d, exist_ok=True)
    rows = []
    written = set()
    for name, disk, extra in good_cases(d):
        layer = disk
        while layer is not None and layer.path not in written:
            layer.write()
            written.add(layer.path)
            layer = getattr(layer, 'parent', None)
        disk.write_raw()
        rows.append((name, 'good', disk.path, 0, '.', extra))  # '.': no empty field
    for name, disk, regex in warn_cases(d):
        disk.write()
        disk.write_raw()
        rows.append((name, 'warn', disk.path, 0, regex, []))
    for name, disk, code, regex, extra in bad_cases(d):
        disk.write()
        if getattr(disk, 'truncate_to', None):
            with open(disk.path, 'r+b') as f:
                f.truncate(disk.truncate_to)
        rows.append((name, 'bad', disk.path, code, regex, extra))
    with open(os.path.join(d, 'cases.tsv'), 'w') as f:
        for name, kind, path, code, regex, extra in rows:
            f.write('\t'.join([name, kind, path, str(code), regex, ' '.join(extra)]) + '\n')
    return rows


def main(argv):
    if len(argv) == 3 and argv[1] == 'cases':
        write_cases(argv[2])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))

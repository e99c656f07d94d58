#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_vhd: small valid and damaged VHDs.

Each input is a 4-byte big-endian child length, the child image, then the
parent image (offered by the fuzzer for any parent path). Layouts follow the
VHD spec: footer copy at 0 (dynamic), dynamic header at 512, BAT at 1536,
locator data, blocks (sector bitmap + data), footer at the end.
"""
import os
import struct
import sys


def checksum(buf, off):
    s = sum(b for i, b in enumerate(buf) if not off <= i < off + 4)
    return (~s) & 0xFFFFFFFF


def chs(size):
    total = min(size // 512, 65535 * 16 * 255)
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


def footer(dtype, vsize, data_offset, uuid, creator=b"win "):
    c, h, s = chs(vsize)
    b = bytearray(512)
    struct.pack_into(">8sIIQI4sI4sQQHBBII16sB", b, 0, b"conectix", 2, 0x10000,
                     data_offset, 0, creator, 0x10000, b"Wi2k", vsize, vsize,
                     c, h, s, dtype, 0, uuid, 0)
    struct.pack_into(">I", b, 64, checksum(b, 64))
    return bytes(b)


def dynamic(vsize, bs, blocks, dtype=3, uuid=b"\x11" * 16, parent_uuid=b"\0" * 16,
            locators=(), bitmaps=None, fill=0x40):
    """blocks: block indices in file order; bitmaps: {index: bytes}."""
    nbat = (vsize + bs - 1) // bs
    bmsize = ((bs // 512 + 7) // 8 + 511) // 512 * 512
    toff = 1536
    loff = toff + (nbat * 4 + 511) // 512 * 512
    pos = loff + 512 * max(1, len(locators))
    bat = [0xFFFFFFFF] * nbat
    body = bytearray()
    for b in blocks:
        bat[b] = (pos + len(body)) // 512
        bm = (bitmaps or {}).get(b, b"\xff" * bmsize)
        body += bm.ljust(bmsize, b"\0") + bytes([fill + b]) * bs
    hdr = bytearray(1024)
    struct.pack_into(">8sQQIII", hdr, 0, b"cxsparse", 0xFFFFFFFFFFFFFFFF, toff,
                     0x10000, nbat, bs)
    hdr[40:56] = parent_uuid
    name = "parent.vhd".encode("utf-16-be")
    hdr[64:64 + len(name)] = name
    locdata = bytearray(512 * max(1, len(locators)))
    for i, (code, path) in enumerate(locators):
        data = path.encode("utf-8" if code == b"MacX" else "utf-16-le")
        locdata[512 * i:512 * i + len(data)] = data
        struct.pack_into(">4sIIIQ", hdr, 576 + 24 * i, code, 1, len(data), 0, loff + 512 * i)
    struct.pack_into(">I", hdr, 36, checksum(hdr, 36))
    f = footer(dtype, vsize, 512, uuid)
    img = bytearray(f + hdr)
    img += struct.pack(">%dI" % nbat, *bat).ljust(loff - toff, b"\0")
    img += locdata + body + f
    return img


def fixed(vsize, creator=b"vpc "):
    data = bytes((i * 7) & 0xFF for i in range(vsize))
    return bytearray(data + footer(2, vsize, 0xFFFFFFFFFFFFFFFF, b"\x22" * 16, creator))


def entry(child, parent=b""):
    return struct.pack(">I", len(child)) + bytes(child) + bytes(parent)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "vhd")
    os.makedirs(out, exist_ok=True)
    seeds = {}
    seeds["fixed"] = entry(fixed(8192))
    seeds["fixed-511"] = entry(fixed(4096)[:-1])
    seeds["raw-no-footer"] = entry(bytes(4096))
    seeds["empty"] = entry(b"")
    seeds["dyn-4k-out-of-order"] = entry(dynamic(16384, 4096, [2, 0, 3]))
    seeds["dyn-partial-bitmap"] = entry(dynamic(16384, 4096, [1, 0],
                                                bitmaps={0: b"\xa0", 1: b"\x01\xff"}))
    seeds["dyn-512-blocks"] = entry(dynamic(4096, 512, [7, 1, 3]))
    seeds["dyn-tail"] = entry(dynamic(10240, 4096, [2, 1]))
    base = dynamic(16384, 4096, [0, 1, 2], uuid=b"\x11" * 16)
    child = dynamic(16384, 4096, [3, 0], dtype=4, uuid=b"\x33" * 16,
                    parent_uuid=b"\x11" * 16,
                    locators=[(b"W2ru", ".\\base.vhd"), (b"MacX", "file:///a/b%20c.vhd")],
                    bitmaps={0: b"\x40", 3: b"\x00"})
    seeds["diff-chain"] = entry(child, base)
    seeds["diff-missing-first"] = entry(
        dynamic(16384, 4096, [1], dtype=4, parent_uuid=b"\x11" * 16,
                locators=[(b"W2ru", "missing\\x.vhd"), (b"W2ku", "C:\\vm\\base.vhd")]), base)
    seeds["diff-uuid-mismatch"] = entry(
        dynamic(16384, 4096, [1], dtype=4, parent_uuid=b"\x99" * 16,
                locators=[(b"W2ru", "base.vhd")]), base)
    selfref = dynamic(8192, 4096, [0], dtype=4, uuid=b"\x55" * 16, parent_uuid=b"\x55" * 16,
                      locators=[(b"W2ku", "self.vhd")])
    seeds["diff-self-parent"] = entry(selfref, selfref)
    rec = dynamic(8192, 4096, [0])
    rec[-512 + 70] ^= 0x55
    seeds["dyn-recover-copy"] = entry(rec)
    bad = dynamic(16384, 4096, [0, 1])
    bad[512 + 36] ^= 1
    seeds["bad-header-checksum"] = entry(bad)
    ov = dynamic(16384, 4096, [0, 1])
    struct.pack_into(">I", ov, 1536 + 8, struct.unpack_from(">I", ov, 1536)[0] + 1)
    seeds["bad-bat-overlap"] = entry(ov)
    # The same valid images with the harness's checksum repair turned on.
    for name in ("fixed", "dyn-4k-out-of-order", "dyn-partial-bitmap", "diff-chain"):
        data = seeds[name]
        seeds[name + "-fixsum"] = bytes([data[0] | 0x80]) + data[1:]
    seeds["raw-img"] = bytes([0x40]) + seeds["raw-no-footer"][1:]
    seeds["diff-chain-override-512"] = bytes([0x80 | 0x20 | 0x08]) + seeds["diff-chain"][1:]
    seeds["dyn-4k-nolimit"] = bytes([0x80 | 0x18]) + seeds["dyn-4k-out-of-order"][1:]
    for name, data in seeds.items():
        assert len(data) < 65536, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

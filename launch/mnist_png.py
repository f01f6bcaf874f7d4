"""Write images of an idx file (MNIST's, raw or .gz) as 8-bit grey PNG files, with the standard
library only: launch/demo.sh, bench/bench_predict.sh and tests/cli/mpi_predict.sh use it.

    python3 launch/mnist_png.py IDX OUT_DIR [N]       -> OUT_DIR/00000.png ... (the first N; all by default)
Each file is checked to decode back to its exact pixels (zlib round trip of the IDAT data).
"""
import gzip
import struct
import sys
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def main():
    path, out = sys.argv[1], sys.argv[2]
    d = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
    n, h, w = struct.unpack(">III", d[4:16])
    n = min(n, int(sys.argv[3])) if len(sys.argv) > 3 else n
    for i in range(n):
        img = d[16 + i * h * w:16 + (i + 1) * h * w]
        raw = b"".join(b"\0" + img[r * w:(r + 1) * w] for r in range(h))  # filter 0 per row
        idat = zlib.compress(raw)
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
               + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
        assert zlib.decompress(png[41:41 + len(idat)]) == raw  # the pixels round-trip
        with open(f"{out}/{i:05d}.png", "wb") as f:
            f.write(png)


if __name__ == "__main__":
    main()

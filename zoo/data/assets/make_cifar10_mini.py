"""Cut the quickstart's CIFAR-10 subset from the full JPEG archive (run once; the result is committed).

    python zoo/data/assets/make_cifar10_mini.py \
        ../shared/data/cifar10-jpeg.tar.gz zoo/data/assets/cifar10-mini.tar.gz

Takes the first ``--train`` and ``--test`` images per class in file-name order and writes them with fixed
metadata, so the output is the same bytes on every run.
"""

from __future__ import annotations

import argparse
import gzip
import io
import tarfile
from collections import Counter
from pathlib import Path


def main() -> None:
    """Parse the arguments and write the subset archive."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--train", type=int, default=1000, help="training images per class")
    parser.add_argument("--test", type=int, default=200, help="test images per class")
    args = parser.parse_args()
    quota = {"train": args.train, "test": args.test}
    taken: Counter[tuple[str, str]] = Counter()
    with tarfile.open(args.source) as src:
        members = sorted((m for m in src.getmembers() if m.isfile()), key=lambda m: m.name)
        chosen = []
        for member in members:
            split, cls, _ = Path(member.name).parts
            if taken[split, cls] < quota[split]:
                taken[split, cls] += 1
                chosen.append((member, src.extractfile(member).read()))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for member, data in chosen:
            info = tarfile.TarInfo(member.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            out.addfile(info, io.BytesIO(data))
    with args.target.open("wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(buffer.getvalue())
    print(f"{args.target}: {len(chosen)} images, {args.target.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

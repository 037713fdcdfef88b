#!/usr/bin/env python3
"""Test data for the germline example: a random reference, a diploid sample that differs from
it by planted SNPs (some heterozygous, some homozygous), and paired reads simulated from the
sample's two haplotypes with wgsim (from Debian's samtools). The germline job's first task,
`data`, runs it; by hand:

    python3 make_data.py                        # data/: 20 kb at 40x, 14 SNPs
    python3 make_data.py --length 200000 --depth 30 --snps 60 --out data-large

Writes reference.fa, reads_1.fq, reads_2.fq and truth.tsv (position, ref, alt, genotype).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--length", type=int, default=20_000)
    ap.add_argument("--depth", type=int, default=40)
    ap.add_argument("--snps", type=int, default=14)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent / "data"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ref = [rng.choice("ACGT") for _ in range(args.length)]
    # SNPs well apart and away from the ends, where reads cover them fully
    spacing = (args.length - 1000) // args.snps
    positions = [500 + i * spacing + rng.randrange(spacing // 2) for i in range(args.snps)]
    haplotypes = [list(ref), list(ref)]
    truth = []
    for n, pos in enumerate(positions):
        alt = rng.choice([b for b in "ACGT" if b != ref[pos]])
        genotype = "1/1" if n % 3 == 0 else "0/1"  # a third homozygous, the rest heterozygous
        haplotypes[0][pos] = alt
        if genotype == "1/1":
            haplotypes[1][pos] = alt
        truth.append(f"{pos + 1}\t{ref[pos]}\t{alt}\t{genotype}")
    write_fasta(out / "reference.fa", "chr1", ref)
    (out / "truth.tsv").write_text("pos\tref\talt\tgenotype\n" + "\n".join(truth) + "\n")
    pairs = args.length * args.depth // 200 // 2  # per haplotype: 2 x 100 bp reads a pair
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for h, seq in enumerate(haplotypes):
            fa = Path(tmp) / f"hap{h}.fa"
            write_fasta(fa, "chr1", seq)
            r1, r2 = Path(tmp) / f"h{h}_1.fq", Path(tmp) / f"h{h}_2.fq"
            subprocess.run(
                ["wgsim", "-S", str(args.seed + h), "-N", str(pairs), "-1", "100", "-2", "100",
                 "-e", "0.001", "-r", "0", "-R", "0", str(fa), str(r1), str(r2)],
                check=True, capture_output=True,
            )  # fmt: skip
            parts.append((r1, r2))
        for mate in (0, 1):
            with (out / f"reads_{mate + 1}.fq").open("w") as f:
                for pair in parts:
                    f.write(pair[mate].read_text())
    print(f"{out}: {args.length} bp, {2 * pairs} read pairs, {args.snps} SNPs")


def write_fasta(path: Path, name: str, seq: list[str]) -> None:
    body = "".join(seq)
    lines = [body[i : i + 60] for i in range(0, len(body), 60)]
    path.write_text(f">{name}\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
